import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  alignSeries,
  boundSeries,
  leftOutNote,
  MAX_CELLS_PER_CHART,
  MAX_SERIES_PER_CHART,
  mergePanels,
  overlayCharts,
  runCharts,
  xValues
} from '../src/charts';
import { IRunRecord, parseRecord } from '../src/record';
import { rawRecord } from './fixtures';

function curve(values: number[]): Record<string, unknown> {
  return { last: values[values.length - 1], curve: { steps: values.map((_, i) => i), values } };
}

function withMetrics(
  metrics: Record<string, unknown>,
  panels: string[][],
  name = 'r'
): IRunRecord {
  const result = parseRecord(rawRecord({ metrics, panels, run: { id: name, name } }));
  assert.ok(result.ok);
  assert.deepEqual(result.warnings, []);
  return result.record;
}

function layout(charts: ReturnType<typeof runCharts>): Array<[string, string[]]> {
  return charts.map(c => [c.title, c.series.map(s => s.label)]);
}

test('charts follow the record panels, whatever the metric names say', () => {
  const metrics = {
    valLoss: curve([2.2, 1.3, 0.7]),
    trainLoss: curve([2, 1, 0.5]),
    lr: curve([0.003, 0.003, 0.001])
  };
  // As nbtrack writes it (tests/test_record.py checks the SVG draws the same).
  assert.deepEqual(layout(runCharts(withMetrics(metrics, [['valLoss', 'trainLoss'], ['lr']]))), [
    ['valLoss, trainLoss', ['valLoss', 'trainLoss']],
    ['lr', ['lr']]
  ]);
  // Any other grouping a record carries is drawn as it is: nothing is regrouped by name.
  assert.deepEqual(layout(runCharts(withMetrics(metrics, [['lr', 'trainLoss'], ['valLoss']]))), [
    ['lr, trainLoss', ['lr', 'trainLoss']],
    ['valLoss', ['valLoss']]
  ]);
});

test('train/loss and val/loss go on one chart, accuracy on another', () => {
  const charts = runCharts(
    withMetrics(
      {
        'train/loss': curve([2, 1, 0.5]),
        'val/loss': curve([2.2, 1.3, 0.7]),
        'val/acc': curve([0.5, 0.7, 0.9])
      },
      [['train/loss', 'val/loss'], ['val/acc']]
    )
  );
  assert.deepEqual(layout(charts), [
    ['train/loss, val/loss', ['train/loss', 'val/loss']],
    ['val/acc', ['val/acc']]
  ]);
});

test('charts come in the order of the record panels, not of its metrics', () => {
  // Saved notebooks sort JSON keys, so the metrics object is alphabetical by then.
  const goal = (g: string | null, values: number[]) => ({ ...curve(values), goal: g, best: 1 });
  const charts = runCharts(
    withMetrics(
      {
        error_rate: goal('min', [0.5, 0.1]),
        grad_norm: curve([300, 200]),
        'train/loss': goal('min', [2, 1]),
        val_acc: goal('max', [0.5, 0.9])
      },
      [['train/loss'], ['error_rate'], ['val_acc'], ['grad_norm']]
    )
  );
  assert.deepEqual(
    charts.map(c => c.title),
    ['train/loss', 'error_rate', 'val_acc', 'grad_norm']
  );
  assert.equal(charts[0].series[0].goal, 'min');
});

test('a record of schema 1 gets one chart per metric', () => {
  const raw = rawRecord({
    schema: 1,
    metrics: { 'train/loss': curve([2, 1]), 'val/loss': curve([2.2, 1.3]) }
  });
  delete raw['panels'];
  const result = parseRecord(raw);
  assert.ok(result.ok);
  assert.deepEqual(result.warnings, []);
  assert.deepEqual(layout(runCharts(result.record)), [
    ['train/loss', ['train/loss']],
    ['val/loss', ['val/loss']]
  ]);
});

test('single points get no chart and log scale needs positive values', () => {
  const charts = runCharts(
    withMetrics(
      { test_acc: curve([0.9]), delta: curve([1, -1, 0.5]), loss: curve([1, 0.5]) },
      [['test_acc'], ['loss'], ['delta']]
    )
  );
  assert.deepEqual(
    charts.map(c => [c.title, c.logAllowed]),
    [
      ['loss', true],
      ['delta', false]
    ]
  );
});

test('comparing runs overlays the same metric of each run', () => {
  const a = withMetrics({ loss: curve([1, 0.5]) }, [['loss']], 'a');
  const b = withMetrics({ loss: curve([1.2, 0.4, 0.3]) }, [['loss']], 'b');
  const charts = overlayCharts([
    { label: 'a', record: a },
    { label: 'b', record: b }
  ]);
  assert.equal(charts.length, 1);
  assert.deepEqual(charts[0].series.map(s => s.label), ['a · loss', 'b · loss']);
});

test('comparing runs keeps each metric on its panel and merges panels that share one', () => {
  const a = withMetrics(
    { loss: curve([1, 0.5]), val_loss: curve([1.1, 0.6]), lr: curve([0.1, 0.1]) },
    [['loss', 'val_loss'], ['lr']],
    'a'
  );
  // b put its losses apart (their scales differed) and logged a metric a did not.
  const b = withMetrics(
    { loss: curve([1.2, 0.4]), val_loss: curve([90, 80]), aux: curve([5, 4]) },
    [['val_loss'], ['loss', 'aux']],
    'b'
  );
  assert.deepEqual(mergePanels([a, b]), [['loss', 'val_loss', 'aux'], ['lr']]);
  // A run whose panel holds metrics of two merged panels joins them into one.
  const c = withMetrics({ lr: curve([0.1, 0.05]), aux: curve([3, 2]) }, [['lr', 'aux']], 'c');
  assert.deepEqual(mergePanels([a, b, c]), [['loss', 'val_loss', 'aux', 'lr']]);
  const charts = overlayCharts([
    { label: 'a', record: a },
    { label: 'b', record: b }
  ]);
  assert.deepEqual(layout(charts), [
    [
      'loss, val_loss, aux',
      ['a · loss', 'a · val_loss', 'b · loss', 'b · val_loss', 'b · aux']
    ],
    ['lr', ['a · lr']]
  ]);
});

test('aligned series share the union of steps with gaps as null', () => {
  const { xs, ys } = alignSeries([
    { label: 'a', steps: [0, 2], values: [1, NaN] },
    { label: 'b', steps: [1, 2], values: [5, 6] }
  ]);
  assert.deepEqual(xs, [0, 1, 2]);
  assert.deepEqual(ys, [
    [1, null, null],
    [null, 5, 6]
  ]);
});

test('a panel the record draws against time gets time first, and every axis it can use', () => {
  const record = parseRecord(
    rawRecord({
      schema: 3,
      metrics: {
        'train/loss': {
          last: 0.5,
          curve: { steps: [0, 500, 944], values: [2, 1, 0.5], times: [0.1, 30, 57] }
        },
        'val/loss': {
          last: 0.6,
          curve: { steps: [0, 7, 14], values: [1.9, 1.1, 0.6], times: [3.8, 30.2, 56.7] }
        },
        'val/acc': { last: 0.9, curve: { steps: [0, 14], values: [0.5, 0.9] } }
      },
      panels: [['train/loss', 'val/loss'], ['val/acc']],
      panel_x: ['relative', 'step']
    })
  );
  assert.ok(record.ok);
  const [loss, acc] = runCharts(record.record);
  assert.equal(loss.defaultX, 'relative');
  assert.deepEqual(loss.xChoices, ['step', 'relative', 'wall']);
  // No times recorded for val/acc: the step is its only axis.
  assert.equal(acc.defaultX, 'step');
  assert.deepEqual(acc.xChoices, ['step']);
  // Against time the two curves interleave: they line up where step would squeeze one.
  const { xs, ys } = alignSeries(loss.series, 'relative');
  assert.deepEqual(xs, [0.1, 3.8, 30, 30.2, 56.7, 57]);
  assert.deepEqual(ys[1], [null, 1.9, null, 1.1, 0.6, null]);
  // Clock time is seconds since the epoch, for uPlot's time scale.
  assert.equal(xValues(loss.series[0], 'wall')![0], 1763779200 + 0.1);
});

test('times stay with their points when a curve arrives out of order', () => {
  const result = parseRecord(
    rawRecord({
      schema: 3,
      metrics: {
        m: { last: 1, curve: { steps: [2, 0, 1], values: [3, 1, 2], times: [20, 0, 10] } },
        partial: { last: 1, curve: { steps: [0, 1], values: [1, 2], times: [0, 'soon'] } }
      }
    })
  );
  assert.ok(result.ok);
  assert.deepEqual(result.record.metrics.get('m')!.curve, {
    steps: [0, 1, 2],
    values: [1, 2, 3],
    times: [0, 10, 20]
  });
  // One bad time and the curve has none: a partial time axis would mislead.
  assert.equal(result.record.metrics.get('partial')!.curve!.times, null);
});

test('comparing runs draws a merged panel against time if any run needs it', () => {
  const timed = (id: string, axis: string): IRunRecord => {
    const parsed = parseRecord(
      rawRecord({
        schema: 3,
        run: { id, name: id, start_time: 1763779200000 },
        metrics: {
          'train/loss': { last: 1, curve: { steps: [0, 9], values: [2, 1], times: [0, 9] } },
          'val/loss': { last: 1, curve: { steps: [0, 1], values: [2, 1], times: [4, 9] } }
        },
        panels: [['train/loss', 'val/loss']],
        panel_x: [axis]
      })
    );
    assert.ok(parsed.ok);
    return parsed.record;
  };
  const charts = overlayCharts([
    { label: 'a', record: timed('a', 'step') },
    { label: 'b', record: timed('b', 'relative') }
  ]);
  assert.equal(charts.length, 1);
  assert.equal(charts[0].defaultX, 'relative');
});

/** One panel as no writer makes it: `count` curves of `points` points each, at distinct steps. */
function crowdedPanel(count: number, points: number, prefix = 'm'): IRunRecord {
  const metrics: Record<string, unknown> = {};
  for (let s = 0; s < count; s++) {
    const steps = Array.from({ length: points }, (_, i) => s * points + i);
    metrics[`${prefix}${s}`] = { last: 1, curve: { steps, values: steps.map((_, i) => i + 1) } };
  }
  return withMetrics(metrics, [Object.keys(metrics)]);
}

test('a panel of thousands of curves draws a bounded chart', () => {
  // The security review's notebook (8.4 MB): 8,000 curves of 20 points at distinct steps in
  // one panel. Aligning all of them made 8,000 columns of 160,000 cells and crashed the tab.
  const [chart] = runCharts(crowdedPanel(8000, 20));
  assert.ok(chart.series.length <= 24, `${chart.series.length} curves on one chart`);
  const { xs, ys } = alignSeries(chart.series, chart.defaultX);
  assert.ok(xs.length * ys.length <= 400_000, `${xs.length * ys.length} aligned cells`);
  // The first curves are drawn, in the record's order, and the chart says what it leaves out.
  assert.equal(chart.series.length, MAX_SERIES_PER_CHART);
  assert.deepEqual(chart.series.slice(0, 2).map(s => s.label), ['m0', 'm1']);
  assert.equal(chart.title.split(', ').length, MAX_SERIES_PER_CHART);
  assert.equal(chart.leftOut.length, 8000 - MAX_SERIES_PER_CHART);
  assert.equal(
    leftOutNote(chart),
    '7976 more curves of this chart not drawn (a chart draws at most 24 curves and 40000 ' +
      'points): m24, m25, m26, m27, m28 and 7971 more. Their values are in the table above.'
  );
});

test('a chart stops at its points and cells, but always draws its first curve', () => {
  // Two curves as long as a record keeps (20,000 points) are drawn; a third is left out.
  const long = runCharts(crowdedPanel(3, 20000))[0];
  assert.deepEqual(long.series.map(s => s.label), ['m0', 'm1']);
  assert.deepEqual(long.leftOut, ['m2']);
  assert.equal(leftOutNote(long)?.startsWith('1 more curve of this chart not drawn'), true);
  // 24 curves of 1,000 points: 24,000 points fit, but not 24 x 24,000 cells.
  const wide = runCharts(crowdedPanel(24, 1000))[0];
  const { xs, ys } = alignSeries(wide.series, 'step');
  assert.ok(xs.length * ys.length <= MAX_CELLS_PER_CHART);
  assert.equal(wide.series.length + wide.leftOut.length, 24);
  assert.ok(wide.leftOut.length > 0);
  const one = boundSeries([{ label: 'huge', steps: new Array(90000).fill(0), values: [] }]);
  assert.equal(one.drawn.length, 1);
});

test('records as nbtrack writes them, and comparisons of four, are drawn whole', () => {
  // The writer: at most 6 curves of at most 300 points in a panel (nbtrack/record/metrics.py).
  const written = (run: string): IRunRecord => {
    const metrics: Record<string, unknown> = {};
    for (let i = 0; i < 6; i++) {
      const steps = Array.from({ length: 300 }, (_, k) => k * (i + 1) + i);
      metrics[`loss${i}`] = { last: 1, curve: { steps, values: steps.map(k => 1 / (k + 1)) } };
    }
    return withMetrics(metrics, [Object.keys(metrics)], run);
  };
  const [own] = runCharts(written('a'));
  assert.equal(own.series.length, 6);
  assert.deepEqual(own.leftOut, []);
  assert.equal(leftOutNote(own), null);
  const runs = ['a', 'b', 'c', 'd'].map(label => ({ label, record: written(label) }));
  const [overlay] = overlayCharts(runs);
  assert.equal(overlay.series.length, 24);
  assert.deepEqual(overlay.leftOut, []);
  // A fifth run's curves go beyond what one chart draws.
  const [crowded] = overlayCharts([...runs, { label: 'e', record: written('e') }]);
  assert.equal(crowded.series.length, MAX_SERIES_PER_CHART);
  assert.deepEqual(crowded.leftOut, [0, 1, 2, 3, 4, 5].map(i => `e · loss${i}`));
});

test('comparing a record of thousands of panels stays bounded and quick', () => {
  const many = (run: string): IRunRecord => {
    const metrics: Record<string, unknown> = {};
    for (let i = 0; i < 8000; i++) {
      metrics[`m${i}`] = { last: 1, curve: { steps: [0, 1], values: [1, 2] } };
    }
    // Pairs (m0, m1), (m2, m3)... in one run, (m1, m2), (m3, m4)... in the other: merged,
    // they join every panel into one.
    const panels: string[][] = run === 'a' ? [] : [['m0']];
    for (let i = run === 'a' ? 0 : 1; i < 8000; i += 2) {
      panels.push(i + 1 < 8000 ? [`m${i}`, `m${i + 1}`] : [`m${i}`]);
    }
    return withMetrics(metrics, panels, run);
  };
  const started = Date.now();
  const merged = mergePanels([many('a'), many('b')]);
  assert.equal(merged.length, 1);
  assert.equal(merged[0].length, 8000);
  assert.deepEqual(merged[0].slice(0, 3), ['m0', 'm1', 'm2']);
  const charts = overlayCharts([
    { label: 'a', record: many('a') },
    { label: 'b', record: many('b') }
  ]);
  assert.equal(charts.length, 1);
  assert.equal(charts[0].series.length, MAX_SERIES_PER_CHART);
  assert.equal(charts[0].leftOut.length, 16000 - MAX_SERIES_PER_CHART);
  assert.ok(Date.now() - started < 5000, `${Date.now() - started} ms`);
});
