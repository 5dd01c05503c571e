"use strict";
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
const strict_1 = __importDefault(require("node:assert/strict"));
const node_test_1 = require("node:test");
const record_1 = require("../src/record");
const runs_1 = require("../src/runs");
const fixtures_1 = require("./fixtures");
function run(id, start, params = {}) {
    return (0, fixtures_1.rawRecord)({ run: { id, name: `run ${id}`, start_time: start }, params });
}
(0, node_test_1.test)('runs are listed newest first with the cell they are in', () => {
    const runs = (0, runs_1.collectRuns)([
        { index: 0, id: 'a', bundles: [{ 'text/plain': 'hi' }] },
        { index: 1, id: 'b', bundles: [{ [record_1.MIME_TYPE]: run('old', 1000) }] },
        { index: 3, id: 'c', bundles: [{ [record_1.MIME_TYPE]: run('new', 2000), 'text/html': '<b>x</b>' }] },
        { index: 4, id: 'd', bundles: [{ [record_1.MIME_TYPE]: { schema: 99 } }] }
    ]);
    strict_1.default.deepEqual(runs.map(r => [r.record.run.id, r.cellIndex, r.cellId]), [
        ['new', 3, 'c'],
        ['old', 1, 'b']
    ]);
});
(0, node_test_1.test)('a run shown twice is listed once, where it was last shown', () => {
    const runs = (0, runs_1.collectRuns)([
        { index: 0, id: 'a', bundles: [{ [record_1.MIME_TYPE]: run('r', 1000) }] },
        { index: 5, id: 'b', bundles: [{ [record_1.MIME_TYPE]: run('r', 1000) }] }
    ]);
    strict_1.default.equal(runs.length, 1);
    strict_1.default.equal(runs[0].cellIndex, 5);
});
(0, node_test_1.test)('offline runs without an id or start time are kept, last', () => {
    const runs = (0, runs_1.collectRuns)([
        { index: 0, id: 'a', bundles: [{ [record_1.MIME_TYPE]: run(null, null) }, { [record_1.MIME_TYPE]: run(null, null) }] },
        { index: 1, id: 'b', bundles: [{ [record_1.MIME_TYPE]: run('x', 5) }] }
    ]);
    strict_1.default.deepEqual(runs.map(r => r.key), ['x', 'cell:a:1', 'cell:a:0']);
});
(0, node_test_1.test)('only params that differ are compared, missing ones count as different', () => {
    const records = [
        run('a', 1, { lr: '0.1', epochs: '5', seed: '1' }),
        run('b', 2, { lr: '0.01', epochs: '5' })
    ].map(r => {
        const p = (0, record_1.parseRecord)(r);
        strict_1.default.ok(p.ok);
        return p.record;
    });
    strict_1.default.deepEqual((0, runs_1.differingParams)(records), [
        { name: 'lr', values: ['0.1', '0.01'] },
        { name: 'seed', values: ['1', null] }
    ]);
});
(0, node_test_1.test)('summaries show varying params first and best values of goal metrics', () => {
    const parsed = (0, record_1.parseRecord)((0, fixtures_1.rawRecord)({
        params: { a: '1', b: '2', lr: '0.1', d: '4' },
        metrics: {
            lr: { last: 0.1 },
            loss: { last: 0.5, goal: 'min', best: 0.4, best_step: 3 }
        }
    }));
    strict_1.default.ok(parsed.ok);
    strict_1.default.deepEqual((0, runs_1.keyParams)(parsed.record, new Set(['lr'])), [
        ['lr', '0.1'],
        ['a', '1'],
        ['b', '2']
    ]);
    strict_1.default.deepEqual((0, runs_1.headlineMetrics)(parsed.record), [
        { name: 'loss', value: 0.4, kind: 'best' },
        { name: 'lr', value: 0.1, kind: 'last' }
    ]);
});
