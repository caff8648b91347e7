"""Plots a run: training loss and eval precision @ 1, by step and by time.

    python -m cifar10_tutorial.tools.plot --train_dir train_dirs/cifar10_train \\
        --eval_dir train_dirs/cifar10_eval --out train_dirs/cifar10_plot.png

Reads the event files that the trainer and the eval loop wrote (the same
values TensorBoard shows: the averaged `total_loss`, and `Precision @ 1`)
and writes one PNG: loss and precision against the global step, and against
hours of wall time since the run started. This is what `make plot` runs.
"""
if __name__ == '__main__':
  from cifar10_tutorial.shell import quiet
  quiet.install(program='plot', doc=__doc__)   # --help before TensorFlow

import logging
import os
import sys

from cifar10_tutorial.core import summaries
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')
LOSS_TAG, PRECISION_TAG = summaries.LOSS_TAG, summaries.PRECISION_TAG


class NothingToPlot(ValueError):
  """Neither folder has event files with the loss or the precision."""


def plot(train_dir, eval_dir, out):
  """Writes the PNG; returns (loss points, precision points)."""
  loss = summaries.read_scalars(train_dir, LOSS_TAG)
  precision = summaries.read_scalars(eval_dir, PRECISION_TAG)
  if not loss and not precision:
    raise NothingToPlot('%s, %s: expected event files with %r or %r, found none '
                     '(train and evaluate first)' % (train_dir, eval_dir,
                                                     LOSS_TAG, PRECISION_TAG))
  import matplotlib
  matplotlib.use('Agg')
  from matplotlib import pyplot
  start = min(p[0] for p in loss + precision)
  figure, rows = pyplot.subplots(2, 1, figsize=(8, 7), dpi=90)
  for axes, x_of, x_label in [
      (rows[0], lambda p: p[1], 'global step'),
      (rows[1], lambda p: (p[0] - start) / 3600.0, 'hours since start')]:
    # A lone point has no line to draw: a marker shows it.
    axes.plot([x_of(p) for p in loss], [p[2] for p in loss], color='tab:red',
              marker='o' if len(loss) == 1 else None,
              label='training loss (averaged)')
    axes.set_xlabel(x_label)
    axes.set_ylabel('total loss', color='tab:red')
    right = axes.twinx()
    right.plot([x_of(p) for p in precision], [p[2] for p in precision], 'o-',
               color='tab:blue', label='eval precision @ 1')
    right.set_ylabel('precision @ 1', color='tab:blue')
    right.set_ylim(0, 1)
    axes.grid(alpha=0.3)
  rows[0].set_title('%s / %s' % (train_dir, eval_dir))
  figure.tight_layout()
  os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
  figure.savefig(out)
  pyplot.close(figure)
  return loss, precision


def _plot(cfg):
  loss, precision = plot(cfg.train_dir, cfg.eval_dir, cfg.out)
  log.info('wrote %s (%d loss points, %d precision points)', cfg.out,
           len(loss), len(precision))


def main(argv=None):
  return program.main('plot', __doc__, _plot, argv, errors=[NothingToPlot],
                      timestamps=False)


if __name__ == '__main__':
  sys.exit(main())
