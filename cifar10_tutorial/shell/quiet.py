"""Keeps TensorFlow's known start-up and shutdown noise off the terminal.

TensorFlow 2.21 writes some lines from C++ straight to the stderr file
descriptor, whatever TF_CPP_MIN_LOG_LEVEL says: absl's "before
InitializeLog" banner, INFO lines (CPU features, "could not find cuda
drivers"), a cuInit error on machines that have no NVIDIA driver at all (or whose
GPUs the user hid with CUDA_VISIBLE_DEVICES=''), and
one "Local rendezvous is aborting with status: CANCELLED" warning per input
thread whenever a queue is closed at the end of a run, oneDNN's notice
that it falls back to the default kernel for uint8 on CPUs without AVX-512,
and, in a cluster, a report per cancelled transfer when a peer is gone (the
trainer names the peer in its one-line error).

`install()` routes file descriptor 2 through a filter that drops exactly
those lines and passes everything else through unchanged. The filter runs in
a forked child process, so lines written just before a crash are still
delivered. Entry points call it before importing TensorFlow; `--tf_logs` on
the command line turns it off.

A Ctrl-C or SIGTERM before the program's own handling is in place ends it
at once, in one line, not a KeyboardInterrupt traceback from inside
TensorFlow's import (stopping.quiet_until_handled). It also spares a
program TensorFlow's import of Keras, which this project
never uses (`without_keras`).
"""
import argparse
import atexit
import logging
import os
import re
import signal
import sys

from cifar10_tutorial.core import stopping
from cifar10_tutorial.shell import flags

# The environment as the user started the program, before the defaults
# below: the bench starts other checkouts of the project in it, as a user
# would. Set by tensorflow_defaults.
USER_ENV = None

# TensorFlow's settings of this project, unless the user set them (they
# must be in place before TensorFlow is first imported):
DEFAULTS = {
    # Its C++ INFO lines (oneDNN, CPU feature banners) are noise for a
    # tutorial; warnings and errors still show. 0 shows everything.
    'TF_CPP_MIN_LOG_LEVEL': '1',
    # oneDNN kernels for convolutions, pooling and matrix products, which
    # TensorFlow turns on by itself only on some Intel CPUs: on the
    # project's 2-core AMD EPYC (AVX2) machines they train this network
    # 1.54x faster (make bench). The same math, another summation order.
    'TF_ENABLE_ONEDNN_OPTS': '1',
    # GPU memory as needed, not all of it at start, so eval, TensorBoard or
    # a second job fit beside a trainer. Set for the whole process: the
    # session's allow_growth alone left a trainer holding 79 GB of an H100;
    # with this, 1.2 GB (nvidia-smi).
    'TF_FORCE_GPU_ALLOW_GROWTH': 'true',
}


def tensorflow_defaults(environ=os.environ):
  """DEFAULTS into `environ` where the user set none; keeps USER_ENV."""
  global USER_ENV
  if USER_ENV is None:
    USER_ENV = dict(environ)
  for name, value in DEFAULTS.items():
    environ.setdefault(name, value)


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

_NOISE = [
    re.compile(rb'^WARNING: All log messages before absl::InitializeLog\(\)'),
    re.compile(rb'^I\d{4} '),   # C++ INFO lines: never an error
    # oneDNN, on CPUs without AVX-512, for the uint8 record transpose: an
    # "error" line that only says it falls back to the default kernel.
    re.compile(rb'^E\d{4} .*\] oneDNN supports DT_UINT8 only on platforms '
               rb'with AVX-512\. Falling back'),
    re.compile(rb'^W\d{4} .*local_rendezvous\.cc:\d+\] Local rendezvous is '
               rb'aborting with status: CANCELLED'),
    # A distributed session cleaning up a finished step, or closing, or
    # cancelling the steps that waited on a peer that is gone (the trainer
    # then names the peer in its one-line error).
    re.compile(rb'^W\d{4} .*local_rendezvous\.cc:\d+\] Local rendezvous is '
               rb'aborting with status: (ABORTED: (Cleanup \d+|Stopping '
               rb'remaining executors|Step \d+ cancelled)|UNAVAILABLE|'
               rb'DEADLINE_EXCEEDED)'),
    re.compile(rb'^W\d{4} .*grpc_worker_service\.cc:\d+\] RecvTensor '
               rb'cancelled for \d+$'),
    re.compile(rb'^E\d{4} .*master_session\.cc:\d+\] Cleanup partition '
               rb'error: UNAVAILABLE'),
    # An all-reduce whose peer is lost or hung: each process aborts its
    # collectives, a line or two each (the trainer names the peer).
    re.compile(rb'^E\d{4} .*(ring_alg|ring_reducer|ring_gatherer|'
               rb'hierarchical_tree_broadcaster|permuter)\.cc:\d+\] '
               rb'Aborting \w+'),
    re.compile(rb'^E\d{4} .*base_collective_executor\.cc:\d+\] '
               rb'BaseCollectiveExecutor::StartAbort'),
    re.compile(rb'^E\d{4} .*master_session\.cc:\d+\] Bad status from '
               rb'collective_executor_mgr->RefreshStepIdSequence'),
    # A dequeue cancelled as a session closes (the run-done and sync-token
    # queues): the stop it belongs to is said by the program.
    re.compile(rb'^W\d{4} .*queue_base\.cc:\d+\] \w+: Skipping cancelled '
               rb'dequeue attempt with queue not closed'),
    re.compile(rb'^E\d{4} .*collective_(param_resolver|executor_mgr|'
               rb'rma_distributed)\w*\.cc:\d+\] .*(abort|Abort|UNAVAILABLE|'
               rb'DEADLINE_EXCEEDED|CANCELLED|peer)'),
    # An image file that does not decode: predict and convert say so, in
    # one line naming the file; TensorFlow's own report of it is a repeat.
    # A record file deleted or made unreadable under a trainer: its input
    # watch stops it with one line naming the file.
    # A checkpoint's folder made unwritable, deleted or moved under a
    # trainer: it says so in one line, naming the folder.
    re.compile(rb'^W\d{4} .*local_rendezvous\.cc:\d+\] Local rendezvous is '
               rb'aborting with status: (NOT_FOUND|PERMISSION_DENIED|'
               rb'RESOURCE_EXHAUSTED|FAILED_PRECONDITION|UNAVAILABLE): '
               rb'(.*\.bin|.*model\.ckpt[^;]*);'),
    # TensorBoard's note at every start that it loads data its new way.
    re.compile(rb'^NOTE: Using experimental fast data loading logic\. To '
               rb'disable, pass$'),
    # libjpeg's own lines for such files (a JPEG header and nothing after,
    # junk inside), and its refusal of a huge one: predict says so itself.
    re.compile(rb'^Improper call to JPEG library in state \d+$'),
    re.compile(rb'^Corrupt JPEG data: .*'),
    re.compile(rb'^E\d{4} .*jpeg_mem\.cc:\d+\] Image too large'),
    # A checkpoint save or restore that fails (a full or read-only disk, a
    # cut or damaged file): the trainer and eval say so in one line, naming
    # the file or folder and what they do about it.
    re.compile(rb'^W\d{4} .*\] OP_REQUIRES failed at (save_restore_v2_ops|'
               rb'save_restore_tensor)\.cc:\d+ : (PERMISSION_DENIED|'
               rb'RESOURCE_EXHAUSTED|FAILED_PRECONDITION|UNAVAILABLE|'
               rb'INTERNAL|OUT_OF_RANGE|DATA_LOSS|NOT_FOUND)'),
    re.compile(rb'^W\d{4} .*\] (OP_REQUIRES failed at decode_\w+_op\.cc|'
               rb'Local rendezvous is aborting with status: INVALID_ARGUMENT: '
               rb'(Unknown image file format|Invalid (JPEG|PNG|GIF|BMP)|'
               rb'(jpeg|png|gif|bmp)|(PNG|JPEG|GIF|BMP) size too large|'
               rb'.*[Ii]mage .*too large|Incomplete bmp content|.*bmp .*))'),
]
# On a GPU: the package sets TF_FORCE_GPU_ALLOW_GROWTH (GPU memory taken as
# needed), and TensorFlow warns that the variable overrides its setting.
_GPU_NOISE = re.compile(rb'^W\d{4} .*gpu_bfc_allocator\.cc:\d+\] Overriding '
                        rb'orig_value setting because the '
                        rb'TF_FORCE_GPU_ALLOW_GROWTH environment variable is '
                        rb'set\.')
_NO_GPU_NOISE = re.compile(rb'^E\d{4} .*cuda_platform\.cc:\d+\] failed call '
                           rb'to cuInit')
# The same, where the user hid the GPUs (CUDA_VISIBLE_DEVICES=''): asked for.
_HIDDEN_GPU_NOISE = re.compile(rb'^E\d{4} .*cuda_platform\.cc:\d+\] failed '
                               rb'call to cuInit: .*CUDA_ERROR_NO_DEVICE')
# The lines that continue a dropped one: its op name (with its status, in a
# distributed session), a gRPC error's details.
_CONTINUED = re.compile(rb'^(\s+"--load_fast=false" and report issues on GitHub\. '
                        rb'More details:|\s+https://github\.com/tensorflow/'
                        rb'tensorboard/issues/4784|'
                        rb'\s+\[\[((\{\{function_node [^}]*\}\})?\{\{node .*\}\}|'
                        rb'[\w/]+)\]\]'
                        rb'( \[type\.googleapis\.com/[^\]]*\])?|'
                        rb'Additional GRPC error information from remote '
                        rb'target .*|:UNKNOWN:Error received from peer .*)$')


def _has_nvidia_driver():
  return os.path.exists('/proc/driver/nvidia') or os.path.exists(
      '/dev/nvidiactl')


def _gpus_hidden(environ=os.environ):
  """Whether CUDA_VISIBLE_DEVICES hides every GPU ('' or '-1')."""
  listed = environ.get('CUDA_VISIBLE_DEVICES')
  return listed is not None and not [
      g for g in listed.split(',') if g.strip() and
      not g.strip().startswith('-')]


def _filter(read_fd, write_fd, drop_cuinit, hidden=False):
  signal.signal(signal.SIGINT, signal.SIG_IGN)    # the parent handles these;
  signal.signal(signal.SIGTERM, signal.SIG_IGN)   # we stop at end of input
  dropped_last = False
  blank = None   # an empty line, held until the next: it goes with a drop
  with os.fdopen(read_fd, 'rb') as lines:
    for line in lines:
      body = line.rstrip(b'\n')
      if not body.strip() and blank is None:
        blank = line
        continue
      drop = (any(p.match(body) for p in _NOISE) or _GPU_NOISE.match(body) or
              (drop_cuinit and _NO_GPU_NOISE.match(body)) or
              (hidden and _HIDDEN_GPU_NOISE.match(body)) or
              (dropped_last and _CONTINUED.match(body)))
      if blank is not None and not drop and not dropped_last:
        os.write(write_fd, blank)   # not next to anything dropped
      blank = None
      dropped_last = bool(drop)
      if not drop:
        os.write(write_fd, line)
    if blank is not None and not dropped_last:
      os.write(write_fd, blank)


def wanted(argv):
  """False if argv asks for --tf_logs (parsed as the real flag is)."""
  p = argparse.ArgumentParser(add_help=False, exit_on_error=False)
  flags.add_options(p, [flags.TF_LOGS])
  try:
    return not p.parse_known_args(argv)[0].tf_logs
  except argparse.ArgumentError:
    return True   # a bad value: the program's own parser will say so


def without_keras():
  """TensorFlow imports Keras as it is imported (for its SavedModel
  registry), a second and a half of a six-second import on this project's
  2-core machine, and Keras brings matplotlib; no program here uses Keras.
  Told to look for the legacy tf_keras instead, which is not installed,
  TensorFlow goes on without either. For this process and the programs it
  starts; a value the user set is kept."""
  os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')


def install(argv=None, program=None, doc=None):
  """Filters fd 2 for the rest of this process (a no-op if asked not to),
  leaves Keras out of TensorFlow's import, and makes a Ctrl-C before the
  program handles signals (while TensorFlow is imported) a quiet exit.
  Given the `program`'s name (and `doc`, its --help text), its flags are
  parsed first: --help and a bad flag answer at once, before TensorFlow is
  imported."""
  stopping.quiet_until_handled()
  argv = sys.argv[1:] if argv is None else argv
  if program:
    flags.parse(program, argv, doc)   # exits on --help or a bad flag
  tensorflow_defaults()
  show_tensorflow_deprecations(False)   # --tf_logs shows them
  without_keras()
  if not wanted(argv):
    return
  sys.stderr.flush()
  read_fd, write_fd = os.pipe()
  original = os.dup(2)
  pid = os.fork()
  if pid == 0:  # the filter: reads until every writer is gone, then exits
    os.close(write_fd)
    try:
      _filter(read_fd, original, drop_cuinit=not _has_nvidia_driver(),
              hidden=_gpus_hidden())
    finally:
      os._exit(0)
  os.close(read_fd)
  os.dup2(write_fd, 2)
  os.close(write_fd)

  def restore():
    # Hand fd 2 back and let the filter finish writing what it has, so its
    # last lines come before the shell prompt.
    try:
      sys.stderr.flush()
    except (OSError, ValueError):
      pass
    os.dup2(original, 2)
    os.waitpid(pid, 0)

  atexit.register(restore)
