"""Starts TensorBoard on the runs (what `make tensorboard` runs).

    python -m cifar10_tutorial.tools.board --logdir train_dirs --port 6006

Checks first that the port is free, so a busy port is one line that says
so, not another server's address followed by TensorBoard's error; then
prints the address and becomes TensorBoard (same process, same Ctrl-C).
"""
if __name__ == '__main__':
  # The filter on stderr outlives the exec below: TensorBoard's known
  # start-up noise is dropped too.
  from cifar10_tutorial.shell import quiet
  quiet.install([])

import errno
import logging
import os
import socket
import sys

from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')
HOST = '127.0.0.1'


class PortBusy(RuntimeError):
  """The port is taken."""


def check_port(port, host=HOST):
  with socket.socket() as s:
    try:
      s.bind((host, port))
    except OSError as e:
      if e.errno != errno.EADDRINUSE:
        raise
      raise PortBusy('port %d: expected a free port for TensorBoard, found '
                     'it in use (another TensorBoard?); try make tensorboard '
                     'PORT=%d' % (port, port + 1))


def serve(cfg):
  check_port(cfg.port)
  if not os.path.isdir(cfg.logdir):
    log.info('%s does not exist yet: TensorBoard will show runs as they '
             'appear', cfg.logdir)
  log.info('TensorBoard for %s: http://%s:%d/', cfg.logdir, HOST, cfg.port)
  sys.stdout.flush()
  os.execv(sys.executable, [sys.executable, '-m', 'tensorboard.main',
                            '--logdir', cfg.logdir, '--host', HOST,
                            '--port', str(cfg.port)])


def main(argv=None):
  return program.main('board', __doc__, serve, argv, errors=[PortBusy],
                      timestamps=False)


if __name__ == '__main__':
  sys.exit(main())
