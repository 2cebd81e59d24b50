#!/usr/bin/env bash
# fd passing over a UNIX socket: the parent opens in.txt only after forking and sends the fd with
# SCM_RIGHTS; the child, which never opens in.txt, reads through the received fd into out.txt.
set -euo pipefail
case "$1" in
  setup) printf 'passed through a socket\n' > in.txt ;;
  run)
    /usr/bin/python3 - <<'PY'
import os, socket, array
path = 'sock'
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(path)
srv.listen(1)
pid = os.fork()
if pid == 0:
    srv.close()
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.connect(path)
    msg, anc, _, _ = c.recvmsg(16, socket.CMSG_SPACE(4))
    fd = array.array('i', anc[0][2][:4])[0]
    data = os.read(fd, 4096)
    with open('out.txt', 'wb') as f:
        f.write(data.upper())
    os._exit(0)
conn, _ = srv.accept()
fd = os.open('in.txt', os.O_RDONLY)
conn.sendmsg([b'f'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array('i', [fd]))])
os.close(fd)
os.waitpid(pid, 0)
os.unlink(path)
PY
    ;;
esac
