"""The classic TensorFlow CIFAR-10 tutorial, rebuilt for TensorFlow 2.21.

Modules, bottom to top: `defaults` (the tutorial's numbers), `flags` (every
option), `records` (the record files), `cifar10_input` (records to batches),
`cifar10` (network, loss, train op), `machine` (what this machine has),
`placement` (where the variables live, how towers' gradients combine),
`train_graph` (the graph for 1..N towers and the in-graph loop), `rundir`
(a train dir: its lock, its checkpoints), `training` (the loop every
trainer shares), `evaluation` (the eval loop's work), `stopping` and
`children` (signals; processes that end with their parent), `program` (the
shell every program runs in). The programs are thin: `cifar10_train`,
`cifar10_multi_gpu_train`, `cifar10_eval`, `cifar10_dist_train`,
`cluster_launch`, `cifar10_data`, `predict`, `convert`, `board`, `plot`,
`bench`. Run them with `python -m cifar10_tutorial.<module> --help`.
"""
import logging
import os

# The environment as the user started us, before the defaults below: the
# bench starts other checkouts of the project in it, as a user would.
USER_ENV = dict(os.environ)

# TensorFlow's C++ INFO lines (oneDNN, CPU feature banners) are noise for a
# tutorial; warnings and errors still show. Set TF_CPP_MIN_LOG_LEVEL=0 to see
# everything. This has to happen before TensorFlow is first imported.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')
# oneDNN kernels for convolutions, pooling and matrix products. TensorFlow
# turns them on by itself only on some Intel CPUs; on the project's 2-core
# AMD EPYC (AVX2) machines they train this network 1.54x faster than the
# default Eigen kernels (`make bench`, README). Same math, different
# summation order. TF_ENABLE_ONEDNN_OPTS=0 turns them off.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
# GPU memory as needed, not all of it at start (TensorFlow's default), so
# eval, TensorBoard or a second job fit on the GPU beside a trainer. Set
# here, for the whole process: the session's allow_growth alone left the
# trainer holding 79 GB of an H100 (something initializes TensorFlow's
# process-wide GPU allocator first); with this, 1.2 GB (measured with
# nvidia-smi, README). TF_FORCE_GPU_ALLOW_GROWTH=false turns it off.
os.environ.setdefault('TF_FORCE_GPU_ALLOW_GROWTH', 'true')


class _DropQueueDeprecations(logging.Filter):
  """Hides TensorFlow's deprecation notices for the v1 APIs used on purpose.

  This project teaches the queue-based input pipeline, which TensorFlow marks
  deprecated; every other TensorFlow warning and error still reaches the user.
  """

  def filter(self, record):
    return not (record.pathname.endswith('deprecation.py') or
                'is deprecated and will be removed' in str(record.msg))


def show_tensorflow_deprecations(show):
  """Turns the deprecation notices for the queue API on or off."""
  logger = logging.getLogger('tensorflow')
  for f in [f for f in logger.filters if isinstance(f, _DropQueueDeprecations)]:
    logger.removeFilter(f)
  if not show:
    logger.addFilter(_DropQueueDeprecations())


show_tensorflow_deprecations(False)   # --tf_logs shows them
