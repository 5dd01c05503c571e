"use strict";
/**
 * Reading a run record (`application/vnd.nbtrack.run+json`, docs/record-schema.md).
 *
 * A record comes from a notebook file, and a notebook can come from anyone, so
 * everything here is parsed defensively into plain typed values: strings stay
 * strings (the views put them into the page as text only), numbers are checked,
 * and the MLflow link is kept only when it is an http(s) URL. This module does
 * not touch the DOM so that it can be unit-tested under node.
 */
Object.defineProperty(exports, "__esModule", { value: true });
exports.SCHEMA_VERSION = exports.MIME_TYPE = void 0;
exports.parseRecord = parseRecord;
exports.safeHttpUrl = safeHttpUrl;
exports.decodeNumber = decodeNumber;
/** The MIME type of a run record in a notebook output bundle. */
exports.MIME_TYPE = 'application/vnd.nbtrack.run+json';
/** The newest record schema this extension understands. */
exports.SCHEMA_VERSION = 1;
/** Curves longer than this are cut: the writer decimates to far fewer points. */
const MAX_CURVE_POINTS = 20000;
/** Longest string kept from a record, so a hostile file cannot blow up the page. */
const MAX_TEXT = 10000;
/**
 * Parse and validate a record as found in an output bundle (an object, or its
 * JSON text).
 *
 * Fails only when the data is not a record at all or is of a newer schema;
 * a malformed field is replaced by "unknown" and reported in `warnings`, so
 * that one bad value does not hide the rest of the run.
 */
function parseRecord(data) {
    let value = data;
    if (typeof value === 'string') {
        try {
            value = JSON.parse(value);
        }
        catch (err) {
            return { ok: false, error: `the record is not valid JSON (${String(err)})` };
        }
    }
    if (!isObject(value)) {
        return { ok: false, error: `a run record must be a JSON object, got ${describe(value)}` };
    }
    const schema = value['schema'];
    if (typeof schema !== 'number' || !Number.isInteger(schema) || schema < 1) {
        return {
            ok: false,
            error: `the record has no valid "schema" version (got ${describe(schema)})`
        };
    }
    if (schema > exports.SCHEMA_VERSION) {
        return {
            ok: false,
            error: `this record uses schema ${schema}, newer than the ${exports.SCHEMA_VERSION} this ` +
                'extension reads: upgrade nbtrack (pip install -U nbtrack) to display it'
        };
    }
    const warnings = [];
    const record = {
        schema,
        nbtrackVersion: optText(value['nbtrack_version']),
        run: parseRun(value['run'], warnings),
        trackingUri: optText(value['tracking_uri']),
        uiUrl: safeHttpUrl(value['ui_url']),
        notebook: parseNotebook(value['notebook']),
        params: parseParams(value['params'], warnings),
        metrics: parseMetrics(value['metrics'], warnings),
        error: parseError(value['error']),
        sync: parseSync(value['sync'])
    };
    if (value['ui_url'] !== undefined && value['ui_url'] !== null && record.uiUrl === null) {
        warnings.push('ignored "ui_url": only http and https links are followed');
    }
    return { ok: true, record, warnings };
}
/**
 * The URL as a string when it parses as an absolute http: or https: URL,
 * otherwise null (so `javascript:`, `data:` and relative links never become links).
 */
function safeHttpUrl(value) {
    if (typeof value !== 'string' || value.length > MAX_TEXT) {
        return null;
    }
    let url;
    try {
        url = new URL(value);
    }
    catch {
        return null;
    }
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}
/**
 * A metric value as written in a record: a number, or one of the strings
 * "NaN", "Infinity", "-Infinity" that JSON cannot express. Anything else is null.
 */
function decodeNumber(value) {
    if (typeof value === 'number') {
        return value;
    }
    switch (value) {
        case 'NaN':
            return NaN;
        case 'Infinity':
            return Infinity;
        case '-Infinity':
            return -Infinity;
        default:
            return null;
    }
}
function parseRun(value, warnings) {
    if (!isObject(value)) {
        warnings.push('the record has no "run" object');
        value = {};
    }
    const run = value;
    const status = run['status'];
    const known = ['FINISHED', 'FAILED', 'KILLED', 'RUNNING'];
    return {
        id: optText(run['id']),
        name: optText(run['name']) ?? 'unnamed run',
        experimentId: optId(run['experiment_id']),
        experimentName: optText(run['experiment_name']),
        status: known.includes(status) ? status : 'UNKNOWN',
        startTime: optFinite(run['start_time']),
        endTime: optFinite(run['end_time']),
        durationS: optFinite(run['duration_s'])
    };
}
function parseNotebook(value) {
    const nb = isObject(value) ? value : {};
    return { path: optText(nb['path']), cellId: optText(nb['cell_id']) };
}
function parseParams(value, warnings) {
    const params = new Map();
    if (value === undefined || value === null) {
        return params;
    }
    if (!isObject(value)) {
        warnings.push('ignored "params": not an object');
        return params;
    }
    for (const [key, raw] of Object.entries(value)) {
        // MLflow stores params as strings; tolerate other scalars written by hand.
        if (typeof raw === 'string') {
            params.set(clip(key), clip(raw));
        }
        else if (typeof raw === 'number' || typeof raw === 'boolean' || raw === null) {
            params.set(clip(key), String(raw));
        }
        else {
            params.set(clip(key), clip(JSON.stringify(raw) ?? ''));
        }
    }
    return params;
}
function parseMetrics(value, warnings) {
    const metrics = new Map();
    if (value === undefined || value === null) {
        return metrics;
    }
    if (!isObject(value)) {
        warnings.push('ignored "metrics": not an object');
        return metrics;
    }
    for (const [key, raw] of Object.entries(value)) {
        if (!isObject(raw)) {
            warnings.push(`ignored metric ${JSON.stringify(clip(key, 200))}: not an object`);
            continue;
        }
        const goal = raw['goal'] === 'min' || raw['goal'] === 'max' ? raw['goal'] : null;
        metrics.set(clip(key), {
            last: decodeNumber(raw['last']),
            lastStep: optFinite(raw['last_step']),
            min: decodeNumber(raw['min']),
            max: decodeNumber(raw['max']),
            goal,
            best: goal === null ? null : decodeNumber(raw['best']),
            bestStep: goal === null ? null : optFinite(raw['best_step']),
            count: optFinite(raw['count']),
            nonfinite: optFinite(raw['nonfinite']) ?? 0,
            curve: parseCurve(raw['curve'], key, warnings)
        });
    }
    return metrics;
}
function parseCurve(value, key, warnings) {
    if (value === undefined || value === null) {
        return null;
    }
    const name = JSON.stringify(clip(key, 200));
    if (!isObject(value) || !Array.isArray(value['steps']) || !Array.isArray(value['values'])) {
        warnings.push(`ignored the curve of ${name}: it needs "steps" and "values" arrays`);
        return null;
    }
    const rawSteps = value['steps'];
    const rawValues = value['values'];
    if (rawSteps.length !== rawValues.length) {
        warnings.push(`the curve of ${name} has ${rawSteps.length} steps but ${rawValues.length} values`);
    }
    const n = Math.min(rawSteps.length, rawValues.length, MAX_CURVE_POINTS);
    const points = [];
    let sorted = true;
    for (let i = 0; i < n; i++) {
        const step = rawSteps[i];
        const v = decodeNumber(rawValues[i]);
        if (typeof step !== 'number' || !Number.isFinite(step) || v === null) {
            continue;
        }
        if (points.length > 0 && step < points[points.length - 1][0]) {
            sorted = false;
        }
        points.push([step, v]);
    }
    if (!sorted) {
        points.sort((a, b) => a[0] - b[0]);
    }
    return { steps: points.map(p => p[0]), values: points.map(p => p[1]) };
}
function parseError(value) {
    if (!isObject(value)) {
        return null;
    }
    return {
        type: optText(value['type']) ?? 'Error',
        message: optText(value['message']) ?? '',
        step: optFinite(value['step'])
    };
}
function parseSync(value) {
    if (!isObject(value)) {
        return null;
    }
    return {
        state: optText(value['state']) ?? 'unknown',
        pendingPoints: optFinite(value['pending_points']) ?? 0
    };
}
function isObject(value) {
    return typeof value === 'object' && value !== null && !Array.isArray(value);
}
function optText(value) {
    return typeof value === 'string' ? clip(value) : null;
}
/** Ids are strings in MLflow, but a hand-written record may use a number. */
function optId(value) {
    if (typeof value === 'number' && Number.isFinite(value)) {
        return String(value);
    }
    return optText(value);
}
function optFinite(value) {
    return typeof value === 'number' && Number.isFinite(value) ? value : null;
}
function clip(text, limit = MAX_TEXT) {
    return text.length > limit ? `${text.slice(0, limit)}…` : text;
}
function describe(value) {
    if (value === null) {
        return 'null';
    }
    if (Array.isArray(value)) {
        return 'an array';
    }
    return typeof value;
}
