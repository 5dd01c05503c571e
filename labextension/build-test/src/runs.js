"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.collectRuns = collectRuns;
exports.differingParams = differingParams;
exports.keyParams = keyParams;
exports.headlineMetrics = headlineMetrics;
/**
 * The runs recorded in a notebook, and how several of them differ. DOM-free:
 * it reads cells as plain data so that tests can feed it nbformat JSON.
 */
const record_1 = require("./record");
/**
 * Every valid record in the cells' outputs, newest first (runs without a start
 * time last, in notebook order). A run shown twice (e.g. a record displayed
 * again) is listed once, at its last position in the notebook.
 */
function collectRuns(cells) {
    const byKey = new Map();
    for (const cell of cells) {
        let n = 0;
        for (const bundle of cell.bundles) {
            if (!(record_1.MIME_TYPE in bundle)) {
                continue;
            }
            const parsed = (0, record_1.parseRecord)(bundle[record_1.MIME_TYPE]);
            if (!parsed.ok) {
                continue;
            }
            const record = parsed.record;
            const key = record.run.id ?? `cell:${cell.id ?? cell.index}:${n}`;
            n += 1;
            byKey.delete(key);
            byKey.set(key, { record, cellIndex: cell.index, cellId: cell.id, key });
        }
    }
    const runs = [...byKey.values()];
    const position = new Map(runs.map((r, i) => [r, i]));
    return runs.sort((a, b) => {
        const ta = a.record.run.startTime;
        const tb = b.record.run.startTime;
        if (ta !== null && tb !== null && ta !== tb) {
            return tb - ta;
        }
        if ((ta === null) !== (tb === null)) {
            return ta === null ? 1 : -1;
        }
        return position.get(b) - position.get(a);
    });
}
/** The params whose values are not the same in all the runs, sorted by name. */
function differingParams(records) {
    const names = new Set();
    for (const r of records) {
        for (const name of r.params.keys()) {
            names.add(name);
        }
    }
    const diffs = [];
    for (const name of [...names].sort()) {
        const values = records.map(r => r.params.get(name) ?? null);
        if (new Set(values).size > 1) {
            diffs.push({ name, values });
        }
    }
    return diffs;
}
/**
 * The few params worth showing in a one-line summary: those that differ
 * between the runs of the notebook first, then the rest, at most `limit`.
 */
function keyParams(record, varying, limit = 3) {
    const entries = [...record.params.entries()];
    const first = entries.filter(([k]) => varying.has(k));
    const rest = entries.filter(([k]) => !varying.has(k));
    return [...first, ...rest].slice(0, limit);
}
/** The headline value of each metric: its best when it has a goal, else its last. */
function headlineMetrics(record, limit = 3) {
    const out = [];
    const withGoal = [...record.metrics].filter(([, m]) => m.goal !== null);
    const withoutGoal = [...record.metrics].filter(([, m]) => m.goal === null);
    for (const [name, m] of [...withGoal, ...withoutGoal]) {
        out.push(m.goal !== null && m.best !== null
            ? { name, value: m.best, kind: 'best' }
            : { name, value: m.last, kind: 'last' });
    }
    return out.slice(0, limit);
}
