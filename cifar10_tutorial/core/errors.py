"""What went wrong, in one line: the ground floor every module reports from.

Errors a user can fix are raised as the module's own exception type
(records.DataError, rundir.RunDirError, ...) with a message of the form
`<file>: expected ..., found ...`; the program shell (shell/program.py)
prints it as `error: <message>` and exits with status 1. Where such a
message quotes another error (TensorFlow's, the operating system's),
`reason` gives the line of it that says what happened.

Hints in a message name an option the way the user gives it (`option`):
`--allow_changed_settings` to a program, `ARGS="--allow_changed_settings"`
(or `TRAIN_DIR=...`) to make, which says it started the program.
"""
import os

# The make variable of each option that has one (the Makefile's).
_MAKE_VARIABLES = {'data_dir': 'DATA_DIR', 'train_dir': 'TRAIN_DIR',
                   'checkpoint_dir': 'TRAIN_DIR', 'eval_dir': 'EVAL_DIR',
                   'max_steps': 'MAX_STEPS', 'batch_size': 'BATCH_SIZE',
                   'num_gpus': 'NUM_GPUS', 'workers': 'WORKERS', 'ps': 'PS',
                   'logdir': 'LOGDIR', 'port': 'PORT', 'host': 'HOST'}


def option(name, value=None, environ=os.environ):
  """How the user sets option `name` (to `value`): `--name value` for a
  program run by hand; from make (CIFAR10_VIA_MAKE, the Makefile sets it),
  `NAME=value` where make has the variable, else `ARGS="--name value"`."""
  flag = '--%s%s' % (name, '' if value is None else ' %s' % value)
  if environ.get('CIFAR10_VIA_MAKE') != '1':
    return flag
  if name in _MAKE_VARIABLES:
    return '%s=%s' % (_MAKE_VARIABLES[name], '...' if value is None
                      else value)
  return 'ARGS="%s"' % flag


# Lines TensorFlow adds to an error that say nothing about it.
_BOILERPLATE = ('The error could be from a previous operation. Restart your '
                'program to reset.',)


def reason(error):
  """The line of an exception's message that says what went wrong. (A
  TensorFlow error from a session run starts with 'Graph execution error:'
  and where the op was defined, and ends with what went wrong and the op.)"""
  message = getattr(error, 'message', None) or str(error)
  # TensorFlow appends its recent log lines after the error itself.
  message = message.split('Recent warning and error logs:')[0]
  lines = [l.strip() for l in message.splitlines()]
  lines = [l for l in lines if l and not l.startswith(('[[', 'Node:'))
           and l.strip('=') and l not in _BOILERPLATE]
  return lines[-1] if lines else type(error).__name__
