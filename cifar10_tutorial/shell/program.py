"""The shell every program runs in: flags, logging, signals, exit status.

    def main(argv=None):
      return program.main('cifar10_eval', __doc__, evaluate, argv)

`main` parses the program's flags (flags.py), sends log lines to stdout
(TensorFlow's own chatter only with --tf_logs), runs `body(cfg)` with
Ctrl-C and SIGTERM handled, and turns the outcome into an exit status: what `body` returns
(None is 0); 1 for an error the user can fix, as one line
`error: <file>: expected ..., found ...`; 128 + the signal number after a
stop on a signal. Programs call quiet.install() before importing
TensorFlow, so its known start-up and shutdown noise stays off the
terminal too.
"""
import logging
import os
import sys
import threading

from cifar10_tutorial.core import children
from cifar10_tutorial.core import progress
from cifar10_tutorial.core import records
from cifar10_tutorial.core import stopping
from cifar10_tutorial.shell import flags
from cifar10_tutorial.shell import quiet

log = logging.getLogger('cifar10_tutorial')

# What a first Ctrl-C or SIGTERM does: a trainer finishes the step in flight
# and saves a checkpoint (FINISH_STEP; before its work is underway,
# stopping.work_underway, it stops at once); a program that winds down by itself
# is told so (Notice(line): the line is logged, stopping.requested() is
# set); other programs stop at once, saying the message given.
FINISH_STEP = None


class Notice(str):
  """on_signal: log this line, and let the program wind down by itself."""


def setup_logging(cfg, timestamps=True):
  """Our progress lines on stdout; TensorFlow's own chatter only if asked."""
  logging.basicConfig(
      level=logging.INFO, handlers=[progress.Handler(sys.stdout)],
      format='%(asctime)s %(message)s' if timestamps else '%(message)s',
      datefmt='%H:%M:%S')
  # matplotlib's INFO lines ("generated new fontManager": eval's and plot's
  # first run builds its font cache).
  logging.getLogger('matplotlib').setLevel(logging.WARNING)
  if not hasattr(cfg, 'tf_logs'):
    return
  tf_logger = logging.getLogger('tensorflow')
  # TensorFlow's logger prints through its own handler: not through ours too.
  tf_logger.propagate = False
  tf_logger.setLevel(logging.INFO if cfg.tf_logs else logging.WARNING)
  quiet.show_tensorflow_deprecations(cfg.tf_logs)


def _finish_step(signum):
  sent = stopping.name(signum)
  if not stopping.underway():
    # Nothing trained, nothing to save: stop now, in one line.
    raise stopping.Interrupted(signum, 'stopped (%s) before training '
                               'started' % sent)
  log.info('stopping (%s): finishing this step and saving a checkpoint '
           '(%s again to quit at once)', sent, sent)


def _stop_at_once(message):
  def first(signum):
    raise stopping.Interrupted(signum, message)
  return first


def _thread_error(args):
  """A failure in a background thread (TensorFlow's event writer on a full
  disk, say): one line, not a traceback; the main thread reports what it
  means for the run."""
  if args.exc_type.__name__ == 'CancelledError':
    return   # a queue runner's step, cancelled as its session closed
  first = (str(args.exc_value).strip().splitlines() or [''])[0]
  log.error('error in %s: %s: %s', args.thread.name if args.thread else
            'a background thread', args.exc_type.__name__, first)


def unencodable(cfg):
  """One line for the first option whose value this process cannot pass
  on as text (where Python reads the command line as ASCII, LANG=C with
  its UTF-8 mode off, a non-ASCII path comes in as undecodable bytes that
  TensorFlow cannot take), or None."""
  for name, value in sorted(vars(cfg).items()):
    for text in value if isinstance(value, list) else [value]:
      if not isinstance(text, str):
        continue
      try:
        text.encode('utf-8')
      except UnicodeEncodeError:
        return ('--%s: expected text this program can read, found bytes '
                'that are not text in this locale (%s): %r; run with '
                'LANG=C.UTF-8 (or PYTHONUTF8=1)' % (
                    name, sys.getfilesystemencoding(),
                    os.fsencode(text))).replace('--images:', 'IMAGE:')
  return None


def main(program, doc, body, argv=None, errors=(), on_signal='stopped',
         timestamps=True):
  """Runs `body(cfg)` as the program `program`; returns its exit status.

  `errors` are the exception types (besides records.DataError) that mean a
  problem the user can fix: one line, exit status 1. `on_signal` is
  FINISH_STEP, the message to stop with, or a function of the flags that
  returns one of those.
  """
  cfg = flags.parse(program, sys.argv[1:] if argv is None else argv, doc)
  setup_logging(cfg, timestamps)
  problem = unencodable(cfg)
  if problem:
    log.error('error: %s', problem)
    return 2
  if callable(on_signal):   # decided by the flags: on_signal(cfg)
    on_signal = on_signal(cfg)
  if on_signal is FINISH_STEP:
    first = _finish_step
  elif isinstance(on_signal, Notice):
    first = lambda signum: log.info('%s', on_signal)
  else:
    first = _stop_at_once(on_signal)
  threading.excepthook = _thread_error
  try:
    with stopping.on_signals(first):
      children.follow_parent()   # started by one of ours: end with it
      status = body(cfg)
  except stopping.Interrupted as e:
    log.info('%s', e)
    return e.exit_code
  except (records.DataError,) + tuple(errors) as e:
    log.error('error: %s', e)
    return 1
  return status or 0
