import assert from 'node:assert/strict';
import { test } from 'node:test';

import { formatDuration, formatNumber } from '../src/format';

test('numbers are short and non-finite values are named', () => {
  assert.equal(formatNumber(0.123456), '0.1235');
  assert.equal(formatNumber(42), '42');
  assert.equal(formatNumber(0.00001234), '1.234e-5');
  assert.equal(formatNumber(NaN), 'NaN');
  assert.equal(formatNumber(-Infinity), '−∞');
  assert.equal(formatNumber(null), '—');
});

test('durations read naturally', () => {
  assert.equal(formatDuration(4.2), '4.20 s');
  assert.equal(formatDuration(185), '3 min 05 s');
  assert.equal(formatDuration(7620), '2 h 07 min');
  assert.equal(formatDuration(null), '—');
});
