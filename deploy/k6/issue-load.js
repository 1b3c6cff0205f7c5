// k6 load step of the deploy pipeline (.github/workflows/deploy.yml, after the smoke Job on
// staging): many virtual users, each request for a user id never used before, against the
// issue endpoint; the run fails when the API answers untruthfully, fails requests or is slow.
//
//   k6 run -e BASE_URL=https://staging.example.invalid -e ADMIN_TOKEN=... deploy/k6/issue-load.js
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e COUPON_ID=42 -e VUS=20 -e DURATION=5s deploy/k6/issue-load.js
//
// Env:
//   BASE_URL      issuer-api's base URL (required; no default, so a run never hits a guess)
//   COUPON_ID     coupon to issue from; when empty, setup() creates a dedicated load coupon
//                 through `POST /admin/coupons` (needs ADMIN_TOKEN): never a real event's stock
//   ADMIN_TOKEN   admin bearer token (COUPON__ADMIN__TOKEN of the target), for that creation
//                 and, when set, on every issue request (acting for the load's users in any auth.mode)
//   STOCK         units of the created load coupon (default 1000000: the run never sells out)
//   VUS           virtual users (default 50), DURATION (default 30s)
//   USER_PREFIX   prefix of the user ids (default k6-load-); a run id follows it, so two runs
//                 (or a re-run) never share a user
//   P99_MS        threshold on the issue requests' p(99) latency (default 500)
//   MAX_FAILED    threshold on http_req_failed's rate (default 0.01)
//
// What counts as truthful for a user who never asked before (checked on every answer):
//   202 with status QUEUED and a requestId             accepted
//   409 SOLD_OUT / NOT_OPEN / CLOSED                    a true "no"
// Anything else fails a check: above all a 409 ALREADY_REQUESTED for a fresh user, the
// incident's lie ("already issued" while nothing was). 5xx and transport errors count in
// http_req_failed (202 and 409 are the expected statuses); near a sell-out that includes a few
// truthful `503 STOCK_HELD` (the last units wait for their publish), which MAX_FAILED allows.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';
import { intEnv, body as parse, count } from './lib.js';

const BASE_URL = (__ENV.BASE_URL || '').replace(/\/+$/, '');
const VUS = intEnv('VUS', 50);
const P99_MS = intEnv('P99_MS', 500);
const STOCK = intEnv('STOCK', 1000000);
const MAX_FAILED = Number(__ENV.MAX_FAILED || '0.01');
const USER_PREFIX = __ENV.USER_PREFIX || 'k6-load-';

if (!/^https?:\/\/[^/]+/.test(BASE_URL)) {
    throw new Error(`BASE_URL must be an http(s) URL of issuer-api, got '${BASE_URL}'`);
}
if (!(MAX_FAILED >= 0 && MAX_FAILED <= 1)) {
    throw new Error(`MAX_FAILED must be a rate between 0 and 1, got '${__ENV.MAX_FAILED}'`);
}

const accepted = new Counter('accepted');
const refused = new Counter('refused');
const untruthful = new Counter('untruthful');
// Neither a yes nor a no: 503 (e.g. STOCK_HELD, units held by requests whose publish is not
// confirmed yet: "try again") and anything else, counted apart so a run's failed requests are
// broken down in its summary line instead of left as one rate.
const unavailable = new Counter('unavailable');
const other = new Counter('other');

http.setResponseCallback(http.expectedStatuses(202, 409));

export const options = {
    scenarios: {
        issue: {
            executor: 'constant-vus',
            vus: Math.max(1, VUS),
            duration: __ENV.DURATION || '30s',
        },
    },
    thresholds: {
        http_req_failed: [`rate<${MAX_FAILED}`],
        'http_req_duration{name:issue}': [`p(99)<${P99_MS}`],
        // Every answer truthful: not one ALREADY_REQUESTED for a fresh user, no odd body.
        checks: ['rate==1'],
        untruthful: ['count==0'],
    },
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

// The coupon to issue from and the run id that makes every user id new.
export function setup() {
    const runId = `${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
    if (__ENV.COUPON_ID) {
        if (!/^[0-9]+$/.test(__ENV.COUPON_ID)) fail(`COUPON_ID must be a coupon id, got '${__ENV.COUPON_ID}'`);
        return { couponId: __ENV.COUPON_ID, runId };
    }
    if (!__ENV.ADMIN_TOKEN) fail('set COUPON_ID, or ADMIN_TOKEN so a load coupon can be created');
    const now = Date.now();
    const iso = (ms) => new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
    const res = http.post(
        `${BASE_URL}/admin/coupons`,
        JSON.stringify({
            name: `k6 load ${runId}`,
            discount_amount: 1,
            total_quantity: STOCK,
            issue_starts_at: iso(now - 60 * 1000),
            issue_ends_at: iso(now + 2 * 60 * 60 * 1000),
            expiry_days: 1,
        }),
        {
            headers: { Authorization: `Bearer ${__ENV.ADMIN_TOKEN}`, 'Content-Type': 'application/json' },
            responseCallback: http.expectedStatuses(201),
            tags: { name: 'create-coupon' },
        },
    );
    if (res.status !== 201) fail(`POST /admin/coupons answered ${res.status}: ${res.body}`);
    const couponId = String(res.json('couponId'));
    if (res.json('redisLoaded') !== true) fail(`coupon ${couponId} was created but not loaded into Redis: ${res.body}`);
    return { couponId, runId };
}

export default function (data) {
    const user = `${USER_PREFIX}${data.runId}-${exec.vu.idInTest}-${exec.vu.iterationInScenario}`;
    const res = http.post(`${BASE_URL}/coupons/${data.couponId}/issue`, null, {
        // With ADMIN_TOKEN the load acts for its users through the admin token, which every
        // auth.mode accepts (a gateway-header deployment serves only its gateways otherwise).
        headers: __ENV.ADMIN_TOKEN ? { userId: user, Authorization: `Bearer ${__ENV.ADMIN_TOKEN}` } : { userId: user },
        tags: { name: 'issue' },
        timeout: '10s',
    });
    const body = parse(res);
    const truthful = check(res, {
        '202 is QUEUED with a requestId': (r) =>
            r.status !== 202 || (body.status === 'QUEUED' && typeof body.requestId === 'string'),
        '409 is a true "no" (SOLD_OUT, NOT_OPEN, CLOSED), never ALREADY_REQUESTED': (r) =>
            r.status !== 409 || ['SOLD_OUT', 'NOT_OPEN', 'CLOSED'].includes(body.code),
    });
    if (res.status === 202 && truthful) accepted.add(1);
    else if (res.status === 409 && truthful) refused.add(1, { code: String(body.code) });
    else if (!truthful) untruthful.add(1, { status: String(res.status), code: String(body.code) });
    else if (res.status === 503) unavailable.add(1, { code: String(body.code) });
    else other.add(1, { status: String(res.status) });
}

// One line for the pipeline's log instead of k6's long summary (its text helper is a remote
// module, and the pipeline must not fetch code at run time); SUMMARY_FILE keeps the whole data.
// k6 itself still exits non-zero (99) when a threshold is crossed.
export function handleSummary(data) {
    const crossed = [];
    for (const [name, metric] of Object.entries(data.metrics)) {
        for (const [rule, verdict] of Object.entries(metric.thresholds || {})) {
            if (!verdict.ok) crossed.push(`${name}: ${rule}`);
        }
    }
    const d = (data.metrics['http_req_duration{name:issue}'] || data.metrics.http_req_duration || {}).values || {};
    const failed = (data.metrics.http_req_failed || {}).values || {};
    const ms = (x) => (typeof x === 'number' ? `${x.toFixed(2)}ms` : 'n/a');
    const line =
        `issue-load: requests=${count(data, 'http_reqs')} accepted=${count(data, 'accepted')} ` +
        `refused=${count(data, 'refused')} untruthful=${count(data, 'untruthful')} ` +
        `unavailable_503=${count(data, 'unavailable')} other=${count(data, 'other')} ` +
        `failed_rate=${typeof failed.rate === 'number' ? failed.rate.toFixed(4) : 'n/a'} ` +
        `p95=${ms(d['p(95)'])} p99=${ms(d['p(99)'])} max=${ms(d.max)} ` +
        `thresholds=${crossed.length === 0 ? 'passed' : `CROSSED (${crossed.join('; ')})`}\n`;
    const out = { stdout: line };
    if (__ENV.SUMMARY_FILE) out[__ENV.SUMMARY_FILE] = JSON.stringify(data, null, 2);
    return out;
}
