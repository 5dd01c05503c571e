"use strict";
var __importDefault = (this && this.__importDefault) || function (mod) {
    return (mod && mod.__esModule) ? mod : { "default": mod };
};
Object.defineProperty(exports, "__esModule", { value: true });
const strict_1 = __importDefault(require("node:assert/strict"));
const node_test_1 = require("node:test");
const format_1 = require("../src/format");
(0, node_test_1.test)('numbers are short and non-finite values are named', () => {
    strict_1.default.equal((0, format_1.formatNumber)(0.123456), '0.1235');
    strict_1.default.equal((0, format_1.formatNumber)(42), '42');
    strict_1.default.equal((0, format_1.formatNumber)(0.00001234), '1.234e-5');
    strict_1.default.equal((0, format_1.formatNumber)(NaN), 'NaN');
    strict_1.default.equal((0, format_1.formatNumber)(-Infinity), '−∞');
    strict_1.default.equal((0, format_1.formatNumber)(null), '—');
});
(0, node_test_1.test)('durations read naturally', () => {
    strict_1.default.equal((0, format_1.formatDuration)(4.2), '4.20 s');
    strict_1.default.equal((0, format_1.formatDuration)(185), '3 min 05 s');
    strict_1.default.equal((0, format_1.formatDuration)(7620), '2 h 07 min');
    strict_1.default.equal((0, format_1.formatDuration)(null), '—');
});
