-- wrk script of `cargo xtask bench api` (crates/xtask/src/bench/api): POST /coupons/{COUPON}/issue, every request a new user.
--
--   wrk -t2 -c64 -d20s -s scripts/load/bench-issue.lua http://127.0.0.1:18080 -- COUPON PREFIX [COUNT]
--   wrk -t1 -c64 -d10s -s scripts/load/bench-issue.lua http://127.0.0.1:18080 -- health x
--
-- COUPON "health" sends GET /health/live instead (the HTTP floor: no Redis, no broker).
--
-- User ids are PREFIX .. thread number .. "-" .. per-thread counter, so they are unique across
-- threads and connections (each wrk thread has its own Lua state and counter, and each thread
-- gets a distinct number in setup()). Give every run its own PREFIX so no run reuses a user.
-- COUNT (default 1): 1 classifies every answer by status in response() (202 / 409 / other);
-- 0 skips response() entirely (slightly cheaper for wrk; then only wrk's own "non-2xx" count is
-- known).
-- done() prints one machine-readable line:
--   BENCH requests=N duration_us=N p50_us=N p95_us=N p99_us=N max_us=N mean_us=N s200=N s202=N
--         s409=N other=N connect=N read=N write=N timeout=N non2xx=N counted=0|1

local threads = {}
local next_id = 0

function setup(thread)
   thread:set("tid", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

local method, path, prefix
local n = 0

function init(args)
   local coupon = args[1] or error("usage: -- COUPON PREFIX [COUNT]")
   prefix = (args[2] or error("usage: -- COUPON PREFIX [COUNT]")) .. tid .. "-"
   if coupon == "health" then
      method, path = "GET", "/health/live"
   else
      method, path = "POST", "/coupons/" .. coupon .. "/issue"
   end
   s200, s202, s409, other, counted = 0, 0, 0, 0, 1
   if args[3] == "0" then
      response = nil -- wrk asks whether response() exists after init()
      counted = 0
   end
end

function request()
   n = n + 1
   return wrk.format(method, path, { ["userId"] = prefix .. n })
end

function response(status, headers, body)
   if status == 202 then
      s202 = s202 + 1
   elseif status == 200 then
      s200 = s200 + 1
   elseif status == 409 then
      s409 = s409 + 1
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local c200, c202, c409, cother = 0, 0, 0, 0
   local counted = 0
   for _, t in ipairs(threads) do
      c200 = c200 + (t:get("s200") or 0)
      c202 = c202 + (t:get("s202") or 0)
      c409 = c409 + (t:get("s409") or 0)
      cother = cother + (t:get("other") or 0)
      counted = t:get("counted")
   end
   local e = summary.errors
   io.write(string.format(
      "BENCH requests=%d duration_us=%d p50_us=%d p95_us=%d p99_us=%d max_us=%d mean_us=%d " ..
      "s200=%d s202=%d s409=%d other=%d connect=%d read=%d write=%d timeout=%d non2xx=%d counted=%d\n",
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
      latency:percentile(99), latency.max, latency.mean, c200, c202, c409, cother,
      e.connect, e.read, e.write, e.timeout, e.status, counted))
end
