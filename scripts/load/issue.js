// k6 load script: a first-come-first-served coupon rush against issuer-api.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 -e COUPON_ID=1 -e USERS=50000 -e RETRIES=5000 \
//          scripts/load/issue.js
//
// Sends USERS + RETRIES requests `POST /coupons/{COUPON_ID}/issue` from VUS virtual users
// (shared-iterations: every iteration is one request, handed out in order):
//   - USERS distinct users `<USER_PREFIX><n>` (n = 0..USERS-1) each try once;
//   - RETRIES extra requests, spread evenly through the run, by a random user who already tried
//     earlier (a person pressing the button again).
// Every answer is classified into one custom Counter:
//   accepted  202 QUEUED
//   sold_out  409 code SOLD_OUT
//   duplicate 409 code ALREADY_REQUESTED (PENDING or ISSUED)
//   errors    anything else (transport error, 5xx, unexpected 4xx, unexpected body)
// plus `retries_sent`. Latency is k6's http_req_duration (p50/p95/p99 in the summary).
//
// Env (all optional except COUPON_ID): BASE_URL (http://127.0.0.1:8080), COUPON_ID, USERS (50000),
// RETRIES (5000), VUS (200), USER_PREFIX (demo-user-), MAX_DURATION (10m), SUMMARY_FILE (path of
// a JSON summary written by handleSummary; empty: none).
import http from 'k6/http';
import exec from 'k6/execution';
import { sleep } from 'k6';
import { Counter } from 'k6/metrics';
import { intEnv, code, count } from '../../deploy/k6/lib.js';

const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
const COUPON_ID = __ENV.COUPON_ID;
const USERS = intEnv('USERS', 50000);
const RETRIES = intEnv('RETRIES', 5000);
const VUS = intEnv('VUS', 200);
const USER_PREFIX = __ENV.USER_PREFIX || 'demo-user-';
const TOTAL = USERS + RETRIES;

if (!COUPON_ID || !/^[0-9]+$/.test(COUPON_ID)) {
    throw new Error(`COUPON_ID must be a coupon id, got '${COUPON_ID}'`);
}
if (TOTAL < 1) {
    throw new Error('USERS + RETRIES must be at least 1');
}

const accepted = new Counter('accepted');
const soldOut = new Counter('sold_out');
const duplicate = new Counter('duplicate');
const errors = new Counter('errors');
const retriesSent = new Counter('retries_sent');
const held = new Counter('stock_held');

// 202 and 409 are expected answers, so http_req_failed counts only the real failures.
http.setResponseCallback(http.expectedStatuses(202, 409));

export const options = {
    scenarios: {
        rush: {
            executor: 'shared-iterations',
            vus: Math.max(1, Math.min(VUS, TOTAL)),
            iterations: TOTAL,
            maxDuration: __ENV.MAX_DURATION || '10m',
        },
    },
    summaryTrendStats: ['avg', 'min', 'med', 'p(50)', 'p(90)', 'p(95)', 'p(99)', 'max'],
};

// Iteration i is a retry when it crosses one of RETRIES evenly spaced marks over TOTAL.
function retriesBefore(i) {
    return Math.floor((i * RETRIES) / TOTAL);
}

export default function () {
    const i = exec.scenario.iterationInTest;
    const r = retriesBefore(i);
    const firstTries = i - r; // distinct users handed out before this iteration
    const isRetry = retriesBefore(i + 1) > r && firstTries > 0;
    let user;
    if (isRetry) {
        user = Math.floor(Math.random() * firstTries);
        retriesSent.add(1);
    } else {
        user = firstTries;
    }

    // 503 STOCK_HELD: the last units are reserved by requests whose publish is not
    // acknowledged yet, so it is not sold out yet. Retry after Retry-After, as a client should.
    let res;
    for (let attempt = 0; ; attempt++) {
        res = http.post(`${BASE_URL}/coupons/${COUPON_ID}/issue`, null, {
            headers: { userId: `${USER_PREFIX}${user}` },
            tags: { name: 'issue' },
            timeout: '30s',
        });
        if (res.status !== 503 || attempt >= 30 || code(res) !== 'STOCK_HELD') break;
        held.add(1);
        sleep(Number(res.headers['Retry-After'] || 1));
    }

    if (res.status === 202) {
        accepted.add(1);
        return;
    }
    if (res.status === 409) {
        const answer = code(res);
        if (answer === 'SOLD_OUT') {
            soldOut.add(1);
            return;
        }
        if (answer === 'ALREADY_REQUESTED') {
            duplicate.add(1);
            return;
        }
    }
    errors.add(1, { status: String(res.status) });
}

export function handleSummary(data) {
    const d = data.metrics.http_req_duration;
    const v = (d && d.values) || {};
    const ms = (x) => (typeof x === 'number' ? `${x.toFixed(2)}ms` : 'n/a');
    const line =
        `k6: requests=${count(data, 'http_reqs')} accepted=${count(data, 'accepted')} ` +
        `sold_out=${count(data, 'sold_out')} duplicate=${count(data, 'duplicate')} ` +
        `errors=${count(data, 'errors')} retries_sent=${count(data, 'retries_sent')} ` +
        `stock_held_retries=${count(data, 'stock_held')} ` +
        `p50=${ms(v['p(50)'])} p95=${ms(v['p(95)'])} p99=${ms(v['p(99)'])} max=${ms(v.max)}\n`;
    const out = { stdout: line };
    if (__ENV.SUMMARY_FILE) out[__ENV.SUMMARY_FILE] = JSON.stringify(data, null, 2);
    return out;
}
