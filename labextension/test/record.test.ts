import assert from 'node:assert/strict';
import { test } from 'node:test';

import { decodeNumber } from '../src/format';
import { IRunRecord, parseRecord, safeHttpUrl } from '../src/record';
import { rawRecord } from './fixtures';

function parsed(data: unknown): IRunRecord {
  const result = parseRecord(data);
  assert.ok(result.ok, result.ok ? '' : result.error);
  return result.record;
}

test('a record is read field by field', () => {
  const r = parsed(rawRecord());
  assert.equal(r.schema, 2);
  assert.equal(r.run.name, 'baseline');
  assert.equal(r.run.status, 'FINISHED');
  assert.equal(r.run.experimentId, '1');
  assert.equal(r.run.durationS, 60);
  assert.equal(r.uiUrl, 'http://127.0.0.1:5000/#/experiments/1/runs/run-a');
  assert.deepEqual([...r.params], [['lr', '0.003'], ['epochs', '5']]);
  const loss = r.metrics.get('train/loss');
  assert.ok(loss);
  assert.equal(loss.best, 0.12);
  assert.equal(loss.goal, 'min');
  assert.deepEqual(loss.curve?.values, [2.3, 1.1, 0.5, 0.12]);
  assert.deepEqual(r.panels, [['train/loss']]);
  assert.equal(r.notebook.cellId, 'c1');
});

test('a schema 1 record is read too, one panel per metric', () => {
  const raw = rawRecord({
    schema: 1,
    metrics: { b: { last: 1 }, a: { last: 2 } }
  });
  delete raw['panels'];
  const result = parseRecord(raw);
  assert.ok(result.ok);
  assert.deepEqual(result.warnings, []);
  assert.equal(result.record.schema, 1);
  assert.deepEqual(result.record.panels, [['b'], ['a']]);
});

test('panels naming unknown or repeated metrics still show every metric once', () => {
  const metric = { last: 1 };
  const r = parsed(
    rawRecord({
      metrics: { 'train/loss': metric, 'val/loss': metric, 'val/acc': metric },
      panels: [['ghost', 'val/acc'], ['val/acc', 'train/loss'], ['ghost']]
    })
  );
  // The same rule as nbtrack.record.schema.record_panels (tests/test_record.py).
  assert.deepEqual(r.panels, [['val/acc'], ['train/loss'], ['val/loss']]);
});

test('missing or malformed panels are reported and every metric still gets one', () => {
  const metrics = { loss: { last: 1 }, acc: { last: 2 } };
  for (const [panels, warning] of [
    [undefined, /no "panels"/],
    ['loss', /ignored "panels"/],
    [[['loss', 7], 'acc'], /parts of "panels"/]
  ] as const) {
    const result = parseRecord(rawRecord({ metrics, panels }));
    assert.ok(result.ok);
    assert.equal(result.warnings.length, 1, String(panels));
    assert.match(result.warnings[0], warning);
    assert.deepEqual(result.record.panels, [['loss'], ['acc']]);
  }
});

test('a record given as JSON text is parsed too', () => {
  assert.equal(parsed(JSON.stringify(rawRecord())).run.id, 'run-a');
});

test('a newer schema is refused with an upgrade hint', () => {
  const result = parseRecord(rawRecord({ schema: 4 }));
  assert.equal(result.ok, false);
  assert.match(result.ok ? '' : result.error, /schema 4.*upgrade nbtrack/);
});

test('data that is not a record is refused', () => {
  for (const bad of [null, 3, 'not json', [], { run: {} }, { schema: 'one' }]) {
    assert.equal(parseRecord(bad).ok, false, JSON.stringify(bad));
  }
});

test('non-http ui_url values are dropped', () => {
  for (const url of [
    'javascript:alert(1)',
    'JaVaScRiPt:alert(1)',
    ' javascript:alert(1)',
    'data:text/html,<script>alert(1)</script>',
    '/relative/path',
    'file:///etc/passwd',
    42
  ]) {
    const result = parseRecord(rawRecord({ ui_url: url }));
    assert.ok(result.ok);
    assert.equal(result.record.uiUrl, null, String(url));
    assert.ok(result.warnings.some(w => w.includes('ui_url')));
  }
  assert.equal(safeHttpUrl('https://mlflow.example/x'), 'https://mlflow.example/x');
});

test('html in names, params and messages stays plain text', () => {
  const payload = '<img src=x onerror=alert(1)>';
  const r = parsed(
    rawRecord({
      run: { id: 'x', name: payload, status: 'FAILED' },
      params: { [payload]: payload },
      error: { type: 'ValueError', message: payload, step: 3 }
    })
  );
  assert.equal(r.run.name, payload);
  assert.equal(r.params.get(payload), payload);
  assert.equal(r.error?.message, payload);
  assert.equal(r.error?.step, 3);
});

test('keys like __proto__ are ordinary data', () => {
  const raw = JSON.parse(
    '{"schema":1,"run":{"name":"p"},"params":{"__proto__":"1","constructor":"2"},' +
      '"metrics":{"__proto__":{"last":1}}}'
  );
  const r = parsed(raw);
  assert.equal(r.params.get('__proto__'), '1');
  assert.equal(r.params.get('constructor'), '2');
  assert.equal(r.metrics.get('__proto__')?.last, 1);
  assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
});

test('NaN and infinities written as strings come back as numbers', () => {
  assert.ok(Number.isNaN(decodeNumber('NaN')));
  assert.equal(decodeNumber('Infinity'), Infinity);
  assert.equal(decodeNumber('-Infinity'), -Infinity);
  assert.equal(decodeNumber('1.5'), null);
  const r = parsed(
    rawRecord({
      metrics: {
        loss: {
          last: 'NaN',
          nonfinite: 1,
          goal: 'min',
          best: 0.5,
          curve: { steps: [0, 1, 2], values: [1, 0.5, 'NaN'] }
        }
      }
    })
  );
  const loss = r.metrics.get('loss');
  assert.ok(loss && loss.last !== null && Number.isNaN(loss.last));
  assert.equal(loss.curve?.values.length, 3);
  assert.equal(loss.nonfinite, 1);
});

test('a broken field is reported and the rest of the record still shows', () => {
  const result = parseRecord(
    rawRecord({
      params: 'lr=1',
      metrics: {
        ok: { last: 1, curve: { steps: [0, 1], values: [1, 2] } },
        uneven: { last: 1, curve: { steps: [0, 1, 2], values: [1, 2] } },
        junk: 7
      }
    })
  );
  assert.ok(result.ok);
  assert.equal(result.record.params.size, 0);
  assert.deepEqual(result.record.metrics.get('uneven')?.curve?.steps, [0, 1]);
  assert.equal(result.record.metrics.has('junk'), false);
  assert.equal(result.record.run.name, 'baseline');
  assert.equal(result.warnings.length, 3);
});

test('unknown statuses and a missing goal are neutral', () => {
  const r = parsed(
    rawRecord({
      run: { name: 'n', status: '<b>DONE</b>' },
      metrics: { lr: { last: 0.1, goal: 'sideways', best: 5 } }
    })
  );
  assert.equal(r.run.status, 'UNKNOWN');
  assert.equal(r.metrics.get('lr')?.goal, null);
  assert.equal(r.metrics.get('lr')?.best, null);
});

test('curves out of order are sorted by step', () => {
  const r = parsed(
    rawRecord({ metrics: { m: { curve: { steps: [2, 0, 1], values: [20, 0, 10] } } } })
  );
  assert.deepEqual(r.metrics.get('m')?.curve, { steps: [0, 1, 2], values: [0, 10, 20], times: null });
});
