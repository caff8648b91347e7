"""`make bench` runs each of its parts and reports them (no speed asserted)."""
import json

from cifar10_tutorial.core import records
from cifar10_tutorial.tools import measure
from conftest import run_module


def test_bench_measures_every_part_and_writes_json(tmp_path):
  data = str(tmp_path / 'data')
  records.write_random(data, 2000, 600)
  out = tmp_path / 'bench.json'
  result = run_module(
      'tools.bench', '--data_dir', data, '--json', str(out), '--rounds', '1',
      '--parts', 'input,train,eval,memory,sustained,ready', '--inputs',
      'batched', '--ready_steps', '12',   # past the first logged step
      '--configs', 'default', '--evals', 'default', '--steps', '2',
      '--runs', 'default', '--run_warmup', '10', '--run_steps', '20',
      # More examples than the queue holds, so that the timed dequeues
      # wait on reading (else the CPU time can round to 0 clock ticks).
      '--warmup', '1', '--input_examples', '4096', timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  for heading in ('input pipeline alone', 'training:', 'eval (one pass',
                  'peak RSS:', 'CPU-ms/example', 'images/s', 'GFLOP/s'):
    assert heading in result.stdout
  summary = json.loads(out.read_text())['summary']
  assert summary['input']['batched']['cpu_ms_per_example'] > 0
  assert summary['train']['default']['examples_per_sec'] > 0
  assert summary['eval']['default']['images_per_sec'] > 0
  assert summary['memory']['records_x10'] == 20000
  assert summary['memory']['peak_rss_mb_x10'] > 0
  # A whole cifar10_train run of this checkout, timed from its own events.
  assert summary['sustained']['default']['examples_per_sec'] > 0
  # A new run from the command to its last checkpoint, in phases, in order.
  ready = summary['ready']['default']
  assert 0 < ready['to_start'] < ready['to_first_checkpoint'] <= \
      ready['to_first_log'] <= ready['train_seconds']
  assert ready['import_seconds'] > 0 and ready['eval_seconds'] > 0
  assert 0 <= ready['precision_at_1'] <= 1


def test_network_flops_follow_the_layer_shapes():
  # conv1 2,764,800 + conv2 14,745,600 + local3 884,736 + local4 73,728 +
  # softmax 1,920 multiply-adds forward; training skips conv1's input
  # gradient.
  forward = 18470784
  assert measure.network_flops(False) == 2 * forward
  assert measure.network_flops(True) == 2 * (3 * forward - 2764800)
