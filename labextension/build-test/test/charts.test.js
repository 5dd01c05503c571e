"use strict";
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
const strict_1 = __importDefault(require("node:assert/strict"));
const node_test_1 = require("node:test");
const charts_1 = require("../src/charts");
const record_1 = require("../src/record");
const fixtures_1 = require("./fixtures");
function curve(values) {
    return { last: values[values.length - 1], curve: { steps: values.map((_, i) => i), values } };
}
function withMetrics(metrics, name = 'r') {
    const result = (0, record_1.parseRecord)((0, fixtures_1.rawRecord)({ metrics, run: { id: name, name } }));
    strict_1.default.ok(result.ok);
    return result.record;
}
(0, node_test_1.test)('train and validation variants of a metric share a family', () => {
    strict_1.default.equal((0, charts_1.metricFamily)('train/loss'), 'loss');
    strict_1.default.equal((0, charts_1.metricFamily)('val/loss'), 'loss');
    strict_1.default.equal((0, charts_1.metricFamily)('train_loss'), 'loss');
    strict_1.default.equal((0, charts_1.metricFamily)('val_loss'), 'loss');
    strict_1.default.equal((0, charts_1.metricFamily)('loss'), 'loss');
    strict_1.default.equal((0, charts_1.metricFamily)('acc_val'), 'acc');
    strict_1.default.equal((0, charts_1.metricFamily)('lr'), 'lr');
    strict_1.default.equal((0, charts_1.metricFamily)('val'), 'val');
});
(0, node_test_1.test)('train/loss and val/loss go on one chart, accuracy on another', () => {
    const charts = (0, charts_1.runCharts)(withMetrics({
        'train/loss': curve([2, 1, 0.5]),
        'val/loss': curve([2.2, 1.3, 0.7]),
        'val/acc': curve([0.5, 0.7, 0.9])
    }));
    strict_1.default.deepEqual(charts.map(c => [c.title, c.series.map(s => s.label)]), [
        ['loss', ['train/loss', 'val/loss']],
        ['acc', ['val/acc']]
    ]);
});
(0, node_test_1.test)('curves of one family with very different scales are split', () => {
    const charts = (0, charts_1.runCharts)(withMetrics({
        'train/loss': curve([2, 1, 0.5]),
        'val/loss': curve([1.9, 1.2, 0.6]),
        'aux/loss': curve([5000, 3000, 2000])
    }));
    strict_1.default.equal(charts.length, 2);
    strict_1.default.deepEqual(charts[0].series.map(s => s.label), ['train/loss', 'val/loss']);
    strict_1.default.deepEqual(charts[1].series.map(s => s.label), ['aux/loss']);
});
(0, node_test_1.test)('single points get no chart and log scale needs positive values', () => {
    const charts = (0, charts_1.runCharts)(withMetrics({ test_acc: curve([0.9]), delta: curve([1, -1, 0.5]), loss: curve([1, 0.5]) }));
    strict_1.default.deepEqual(charts.map(c => [c.title, c.logAllowed]), [
        ['delta', false],
        ['loss', true]
    ]);
});
(0, node_test_1.test)('comparing runs overlays the same metric of each run', () => {
    const a = withMetrics({ loss: curve([1, 0.5]) }, 'a');
    const b = withMetrics({ loss: curve([1.2, 0.4, 0.3]) }, 'b');
    const charts = (0, charts_1.overlayCharts)([
        { label: 'a', record: a },
        { label: 'b', record: b }
    ]);
    strict_1.default.equal(charts.length, 1);
    strict_1.default.deepEqual(charts[0].series.map(s => s.label), ['a · loss', 'b · loss']);
});
(0, node_test_1.test)('aligned series share the union of steps with gaps as null', () => {
    const { xs, ys } = (0, charts_1.alignSeries)([
        { label: 'a', steps: [0, 2], values: [1, NaN] },
        { label: 'b', steps: [1, 2], values: [5, 6] }
    ]);
    strict_1.default.deepEqual(xs, [0, 1, 2]);
    strict_1.default.deepEqual(ys, [
        [1, null, null],
        [null, 5, 6]
    ]);
});
