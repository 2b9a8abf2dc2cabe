import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeExposition, parseFamilies } from '../../src/metrics/exposition';

const own = [
  '# HELP lifeline_failures_total Failed operations.',
  '# TYPE lifeline_failures_total counter',
  'lifeline_failures_total{database="a",kind="backup"} 0',
  '# HELP process_resident_memory_bytes Resident memory size in bytes.',
  '# TYPE process_resident_memory_bytes gauge',
  'process_resident_memory_bytes 1000',
  '',
].join('\n');

describe('merging the SDK exporter\'s text into the scrape', () => {
  it('appends the SDK families after ours, once each, and drops a family we already serve', () => {
    const sdk = [
      '# HELP temporal_request_total Count of client request successes by rpc name',
      '# TYPE temporal_request_total counter',
      'temporal_request_total{operation="StartWorkflowExecution"} 1',
      '# HELP process_resident_memory_bytes Resident memory size in bytes.',
      '# TYPE process_resident_memory_bytes gauge',
      'process_resident_memory_bytes 2000',
      // The same family described a second time further on: one HELP and TYPE, both samples kept.
      '# HELP temporal_request_total Count of client request successes by rpc name',
      '# TYPE temporal_request_total counter',
      'temporal_request_total{operation="PollWorkflowTaskQueue"} 7',
      '# HELP temporal_request_latency_seconds Histogram of client request latencies',
      '# TYPE temporal_request_latency_seconds histogram',
      'temporal_request_latency_seconds_bucket{le="0.05"} 1',
      'temporal_request_latency_seconds_bucket{le="+Inf"} 2',
      'temporal_request_latency_seconds_sum 0.5',
      'temporal_request_latency_seconds_count 2',
      '',
    ].join('\n');
    const merged = mergeExposition(own, sdk);
    const lines = merged.split('\n');
    assert.ok(merged.startsWith(own.trimEnd() + '\n'), 'ours first, unchanged');
    assert.ok(merged.endsWith('\n'));
    for (const meta of ['# HELP temporal_request_total', '# TYPE temporal_request_total', '# HELP process_resident_memory_bytes', '# TYPE process_resident_memory_bytes', '# TYPE temporal_request_latency_seconds']) {
      assert.equal(lines.filter((l) => l.startsWith(meta + ' ')).length, 1, meta);
    }
    assert.ok(!merged.includes('process_resident_memory_bytes 2000'), "the SDK's duplicate family is dropped");
    assert.deepEqual(lines.filter((l) => l.startsWith('temporal_request_total')), ['temporal_request_total{operation="StartWorkflowExecution"} 1', 'temporal_request_total{operation="PollWorkflowTaskQueue"} 7']);
    // A family's samples follow its TYPE line (Prometheus refuses a family split in two).
    const type = lines.indexOf('# TYPE temporal_request_total counter');
    assert.deepEqual(lines.slice(type + 1, type + 3), ['temporal_request_total{operation="StartWorkflowExecution"} 1', 'temporal_request_total{operation="PollWorkflowTaskQueue"} 7']);
    assert.equal(lines.filter((l) => l.startsWith('temporal_request_latency_seconds_')).length, 4, 'histogram samples stay with their family');
  });

  it('serves our text alone when the SDK gave nothing', () => {
    assert.equal(mergeExposition(own, ''), own);
    assert.deepEqual(parseFamilies('').length, 0);
  });
});
