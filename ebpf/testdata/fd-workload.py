# A small program that makes every fd and file-system syscall prov captures, in a known order,
# and prints what it did (fds, and dev/ino from stat) as JSON for the test to compare with.
import ctypes, fcntl, json, os, socket, struct, sys, threading

d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
out = {'pid': os.getpid()}

def ident(path=None, fd=None):
    st = os.fstat(fd) if fd is not None else os.lstat(path)
    return {'dev': st.st_dev, 'ino': st.st_ino}

fds = (ctypes.c_int * 2)()
if libc.syscall(22, fds) != 0:  # the old pipe(2) syscall (os.pipe uses pipe2)
    raise OSError(ctypes.get_errno(), 'pipe')
r, w = fds[0], fds[1]
out['pipe'] = {'fds': [r, w], 'ino': os.fstat(r).st_ino}
r2, w2 = os.pipe2(os.O_CLOEXEC)
out['pipe2'] = {'fds': [r2, w2], 'ino': os.fstat(r2).st_ino}

fd = os.open(f'{d}/a.txt', os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
os.write(fd, b'hello\n')
out['create'] = {'fd': fd, **ident(fd=fd)}
out['dup'] = libc.dup(fd)  # the dup(2) syscall (os.dup uses fcntl F_DUPFD_CLOEXEC)
out['dup2'] = os.dup2(fd, 20)
out['dup3'] = os.dup2(fd, 21, inheritable=False)  # dup3(O_CLOEXEC)
out['f_dupfd'] = fcntl.fcntl(fd, fcntl.F_DUPFD, 30)
out['f_dupfd_cloexec'] = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 40)
os.close(out['dup'])
if libc.syscall(436, 20, 45, 0) != 0:  # close_range(20, 45, 0)
    raise OSError(ctypes.get_errno(), 'close_range')
os.close(fd)
ro = os.open(f'{d}/a.txt', os.O_RDONLY)
out['reopen'] = {'fd': ro, **ident(fd=ro)}
os.close(ro)
how = ctypes.create_string_buffer(struct.pack('QQQ', os.O_RDONLY | os.O_CLOEXEC, 0, 0), 24)
o2 = libc.syscall(437, -100, f'{d}/a.txt'.encode(), how, 24)  # openat2(AT_FDCWD, ...)
if o2 < 0:
    raise OSError(ctypes.get_errno(), 'openat2')
out['openat2'] = {'fd': o2, **ident(fd=o2)}
os.close(o2)
cr = libc.creat(f'{d}/creat.txt'.encode(), 0o600)
out['creat'] = {'fd': cr, **ident(fd=cr)}
os.close(cr)

os.rename(f'{d}/a.txt', f'{d}/b.txt')
out['rename'] = ident(f'{d}/b.txt')
with open(f'{d}/c.txt', 'w') as f:
    f.write('old\n')
out['victim'] = ident(f'{d}/c.txt')
os.rename(f'{d}/b.txt', f'{d}/c.txt')  # rename over: c.txt's old inode loses its last link
os.link(f'{d}/c.txt', f'{d}/e.txt')
out['link'] = ident(f'{d}/e.txt')
os.unlink(f'{d}/c.txt')  # e.txt still links the inode
os.unlink(f'{d}/e.txt')  # last link
os.mkdir(f'{d}/sub', 0o755)
out['mkdir'] = ident(f'{d}/sub')
os.symlink('e.txt', f'{d}/sl')
out['symlink'] = ident(f'{d}/sl')
os.unlink(f'{d}/sl')
os.rmdir(f'{d}/sub')

# UNIX socket, fd passing with SCM_RIGHTS
srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
srv.bind(f'{d}/sock')
srv.listen(1)
cli = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
cli.connect(f'{d}/sock')
conn, _ = srv.accept()
passed = os.open(f'{d}/passed.txt', os.O_CREAT | os.O_RDWR, 0o600)
out['passed'] = {'fd': passed, **ident(fd=passed)}
cli.sendmsg([b'x'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(ctypes.c_int(passed)))])
msg, anc, _, _ = conn.recvmsg(16, 64)
cli.send(b'yz')  # sendto(2) without an address
conn.recv(16)
got = int.from_bytes(anc[0][2][:4], 'little')
out['received'] = {'fd': got, **ident(fd=got)}
out['sock'] = {'srv': srv.fileno(), 'cli': cli.fileno(), 'conn': conn.fileno(),
               'srv_ino': os.fstat(srv.fileno()).st_ino, 'cli_ino': os.fstat(cli.fileno()).st_ino,
               'conn_ino': os.fstat(conn.fileno()).st_ino}

t = threading.Thread(target=lambda: None)
t.start()
t.join()
out['thread'] = t.native_id
print(json.dumps(out))
