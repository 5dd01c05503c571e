"use strict";
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
const strict_1 = __importDefault(require("node:assert/strict"));
const node_test_1 = require("node:test");
const record_1 = require("../src/record");
const fixtures_1 = require("./fixtures");
function parsed(data) {
    const result = (0, record_1.parseRecord)(data);
    strict_1.default.ok(result.ok, result.ok ? '' : result.error);
    return result.record;
}
(0, node_test_1.test)('a schema 1 record is read field by field', () => {
    const r = parsed((0, fixtures_1.rawRecord)());
    strict_1.default.equal(r.run.name, 'baseline');
    strict_1.default.equal(r.run.status, 'FINISHED');
    strict_1.default.equal(r.run.experimentId, '1');
    strict_1.default.equal(r.run.durationS, 60);
    strict_1.default.equal(r.uiUrl, 'http://127.0.0.1:5000/#/experiments/1/runs/run-a');
    strict_1.default.deepEqual([...r.params], [['lr', '0.003'], ['epochs', '5']]);
    const loss = r.metrics.get('train/loss');
    strict_1.default.ok(loss);
    strict_1.default.equal(loss.best, 0.12);
    strict_1.default.equal(loss.goal, 'min');
    strict_1.default.deepEqual(loss.curve?.values, [2.3, 1.1, 0.5, 0.12]);
    strict_1.default.equal(r.notebook.cellId, 'c1');
});
(0, node_test_1.test)('a record given as JSON text is parsed too', () => {
    strict_1.default.equal(parsed(JSON.stringify((0, fixtures_1.rawRecord)())).run.id, 'run-a');
});
(0, node_test_1.test)('a newer schema is refused with an upgrade hint', () => {
    const result = (0, record_1.parseRecord)((0, fixtures_1.rawRecord)({ schema: 2 }));
    strict_1.default.equal(result.ok, false);
    strict_1.default.match(result.ok ? '' : result.error, /schema 2.*upgrade nbtrack/);
});
(0, node_test_1.test)('data that is not a record is refused', () => {
    for (const bad of [null, 3, 'not json', [], { run: {} }, { schema: 'one' }]) {
        strict_1.default.equal((0, record_1.parseRecord)(bad).ok, false, JSON.stringify(bad));
    }
});
(0, node_test_1.test)('non-http ui_url values are dropped', () => {
    for (const url of [
        'javascript:alert(1)',
        'JaVaScRiPt:alert(1)',
        ' javascript:alert(1)',
        'data:text/html,<script>alert(1)</script>',
        '/relative/path',
        'file:///etc/passwd',
        42
    ]) {
        const result = (0, record_1.parseRecord)((0, fixtures_1.rawRecord)({ ui_url: url }));
        strict_1.default.ok(result.ok);
        strict_1.default.equal(result.record.uiUrl, null, String(url));
        strict_1.default.ok(result.warnings.some(w => w.includes('ui_url')));
    }
    strict_1.default.equal((0, record_1.safeHttpUrl)('https://mlflow.example/x'), 'https://mlflow.example/x');
});
(0, node_test_1.test)('html in names, params and messages stays plain text', () => {
    const payload = '<img src=x onerror=alert(1)>';
    const r = parsed((0, fixtures_1.rawRecord)({
        run: { id: 'x', name: payload, status: 'FAILED' },
        params: { [payload]: payload },
        error: { type: 'ValueError', message: payload, step: 3 }
    }));
    strict_1.default.equal(r.run.name, payload);
    strict_1.default.equal(r.params.get(payload), payload);
    strict_1.default.equal(r.error?.message, payload);
    strict_1.default.equal(r.error?.step, 3);
});
(0, node_test_1.test)('keys like __proto__ are ordinary data', () => {
    const raw = JSON.parse('{"schema":1,"run":{"name":"p"},"params":{"__proto__":"1","constructor":"2"},' +
        '"metrics":{"__proto__":{"last":1}}}');
    const r = parsed(raw);
    strict_1.default.equal(r.params.get('__proto__'), '1');
    strict_1.default.equal(r.params.get('constructor'), '2');
    strict_1.default.equal(r.metrics.get('__proto__')?.last, 1);
    strict_1.default.equal({}['polluted'], undefined);
});
(0, node_test_1.test)('NaN and infinities written as strings come back as numbers', () => {
    strict_1.default.ok(Number.isNaN((0, record_1.decodeNumber)('NaN')));
    strict_1.default.equal((0, record_1.decodeNumber)('Infinity'), Infinity);
    strict_1.default.equal((0, record_1.decodeNumber)('-Infinity'), -Infinity);
    strict_1.default.equal((0, record_1.decodeNumber)('1.5'), null);
    const r = parsed((0, fixtures_1.rawRecord)({
        metrics: {
            loss: {
                last: 'NaN',
                nonfinite: 1,
                goal: 'min',
                best: 0.5,
                curve: { steps: [0, 1, 2], values: [1, 0.5, 'NaN'] }
            }
        }
    }));
    const loss = r.metrics.get('loss');
    strict_1.default.ok(loss && loss.last !== null && Number.isNaN(loss.last));
    strict_1.default.equal(loss.curve?.values.length, 3);
    strict_1.default.equal(loss.nonfinite, 1);
});
(0, node_test_1.test)('a broken field is reported and the rest of the record still shows', () => {
    const result = (0, record_1.parseRecord)((0, fixtures_1.rawRecord)({
        params: 'lr=1',
        metrics: {
            ok: { last: 1, curve: { steps: [0, 1], values: [1, 2] } },
            uneven: { last: 1, curve: { steps: [0, 1, 2], values: [1, 2] } },
            junk: 7
        }
    }));
    strict_1.default.ok(result.ok);
    strict_1.default.equal(result.record.params.size, 0);
    strict_1.default.deepEqual(result.record.metrics.get('uneven')?.curve?.steps, [0, 1]);
    strict_1.default.equal(result.record.metrics.has('junk'), false);
    strict_1.default.equal(result.record.run.name, 'baseline');
    strict_1.default.equal(result.warnings.length, 3);
});
(0, node_test_1.test)('unknown statuses and a missing goal are neutral', () => {
    const r = parsed((0, fixtures_1.rawRecord)({
        run: { name: 'n', status: '<b>DONE</b>' },
        metrics: { lr: { last: 0.1, goal: 'sideways', best: 5 } }
    }));
    strict_1.default.equal(r.run.status, 'UNKNOWN');
    strict_1.default.equal(r.metrics.get('lr')?.goal, null);
    strict_1.default.equal(r.metrics.get('lr')?.best, null);
});
(0, node_test_1.test)('curves out of order are sorted by step', () => {
    const r = parsed((0, fixtures_1.rawRecord)({ metrics: { m: { curve: { steps: [2, 0, 1], values: [20, 0, 10] } } } }));
    strict_1.default.deepEqual(r.metrics.get('m')?.curve, { steps: [0, 1, 2], values: [0, 10, 20] });
});
