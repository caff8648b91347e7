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
import ipaddress
import logging
import os
import socket
import sys

from cifar10_tutorial.core import errors
from cifar10_tutorial.shell import program

log = logging.getLogger('cifar10_tutorial')


class PortBusy(RuntimeError):
  """The port is taken."""


def check_port(port, host='127.0.0.1'):
  family = socket.AF_INET6 if ':' in host else socket.AF_INET
  with socket.socket(family) as s:
    try:
      s.bind((host, port))
    except (OSError, UnicodeError) as e:
      if getattr(e, 'errno', None) == errno.EADDRINUSE:
        raise PortBusy('port %d: expected a free port for TensorBoard, found '
                       'it in use (another TensorBoard?); try %s' % (
                           port, errors.option('port', port + 1)))
      raise PortBusy('%s: expected an address of this machine to serve on, '
                     'found %s' % (host, getattr(e, 'strerror', None) or e))


def _loopback(host):
  try:
    return host == 'localhost' or ipaddress.ip_address(host).is_loopback
  except ValueError:
    return False


def serve(cfg):
  check_port(cfg.port, cfg.host)
  if not os.path.isdir(cfg.logdir):
    log.info('%s does not exist yet: TensorBoard will show runs as they '
             'appear', cfg.logdir)
  shown = '[%s]' % cfg.host if ':' in cfg.host else cfg.host
  log.info('TensorBoard for %s: http://%s:%d/', cfg.logdir, shown, cfg.port)
  if not _loopback(cfg.host):
    log.warning('note: served on %s, not this machine alone: whoever reaches '
                'it sees your runs (an SSH tunnel keeps it private: README, '
                'TensorBoard)', cfg.host)
  sys.stdout.flush()
  os.execv(sys.executable, [sys.executable, '-m', 'tensorboard.main',
                            '--logdir', cfg.logdir, '--host', cfg.host,
                            '--port', str(cfg.port)])


def main(argv=None):
  return program.main('board', __doc__, serve, argv, errors=[PortBusy],
                      timestamps=False)


if __name__ == '__main__':
  sys.exit(main())
