"""The classic TensorFlow CIFAR-10 tutorial, rebuilt for TensorFlow 2.21.

In front, the tutorial's five modules, as a learner meets them:

  cifar10_input            record files to distorted, batched images (queues)
  cifar10                  the network, its loss, the train op
  cifar10_train            the trainer on one device         (`make train`)
  cifar10_multi_gpu_train  towers on several GPUs  (`make train-multigpu`)
  cifar10_eval             the eval loop beside training      (`make eval`)

and the wings they stand on, bottom to top (a module imports only from its
own floor or those below; the programs are thin, over the engine):

  core/        the ground floor: the tutorial's numbers (defaults), the
               record files, summaries, one-line errors, signals, the
               processes a program starts
  engine/      what the programs run: this machine's devices, where the
               variables live (placement), the graph for 1..N towers, the
               training loop, its checkpoints and train dir, the eval loop
  cluster/     training across processes and machines: a worker's part,
               synchronous steps, `make train-cluster`'s launcher and the
               per-task program cifar10_dist_train
  own_images/  your own images: convert folders to records, predict
  tools/       around the runs: the data download, TensorBoard, plots, the
               bench
  shell/       what every program runs in: options (flags), logging, exit
               status, TensorFlow's noise kept off the terminal

Run a program with `python -m cifar10_tutorial.<module> --help`, e.g.
`python -m cifar10_tutorial.cifar10_train`, `...tools.bench`,
`...cluster.launch`; the Makefile's targets run them with the README's
defaults.
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
