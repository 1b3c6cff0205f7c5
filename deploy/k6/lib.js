// What couponrush's k6 scripts share (deploy/k6/issue-load.js, scripts/load/issue.js): reading
// their environment, an answer's code, a counter's total in handleSummary.

// __ENV[name] as a non-negative integer, `fallback` when unset or empty.
export function intEnv(name, fallback) {
    const raw = __ENV[name];
    if (raw === undefined || raw === '') return fallback;
    if (!/^[0-9]+$/.test(raw)) throw new Error(`${name} must be a non-negative integer, got '${raw}'`);
    return parseInt(raw, 10);
}

// The JSON body of an answer, {} when it has none.
export function body(res) {
    try {
        return res.json() || {};
    } catch (_) {
        return {};
    }
}

// The `code` field of an answer's JSON body, '' when it has none.
export function code(res) {
    return body(res).code || '';
}

// The total of Counter `name` in handleSummary's data, 0 when nothing was counted.
export function count(data, name) {
    const m = data.metrics[name];
    return m && m.values && typeof m.values.count === 'number' ? m.values.count : 0;
}
