"""make plot: a PNG of a run's loss and precision."""
import numpy as np
import tensorflow.compat.v1 as tf

from conftest import run_module
from cifar10_tutorial.core import summaries


def test_plot_reads_the_run_and_writes_a_png(trained_run, tmp_path):
  eval_dir = str(tmp_path / 'eval')
  assert run_module('cifar10_eval', '--data_dir', trained_run['data_dir'],
                    '--checkpoint_dir', trained_run['train_dir'],
                    '--eval_dir', eval_dir, '--run_once').returncode == 0
  out = str(tmp_path / 'plot.png')
  result = run_module('tools.plot', '--train_dir', trained_run['train_dir'],
                      '--eval_dir', eval_dir, '--out', out)
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'points' in result.stdout
  loss = summaries.read_scalars(trained_run['train_dir'], 'total_loss')
  precision = summaries.read_scalars(eval_dir, 'Precision @ 1')
  assert [p[1] for p in precision] == [6] and loss
  with open(out, 'rb') as f:
    pixels = tf.io.decode_png(f.read()).numpy()
  assert pixels.shape[0] > 300 and pixels.shape[1] > 300
  assert np.unique(pixels.reshape(-1, pixels.shape[2]), axis=0).shape[0] > 10


def test_plot_of_nothing_says_so(tmp_path):
  result = run_module('tools.plot', '--train_dir', str(tmp_path / 'none'),
                      '--eval_dir', str(tmp_path / 'none'), '--out',
                      str(tmp_path / 'plot.png'))
  assert result.returncode == 1
  assert 'expected event files' in result.stdout.strip().splitlines()[-1]
  assert not (tmp_path / 'plot.png').exists()
