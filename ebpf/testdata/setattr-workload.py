#!/usr/bin/env python3
"""Attribute changes through every syscall prov's eBPF capture records as `setattr`: the
coreutils commands (chmod, chown, touch -m -d, truncate), the os.* calls (fchmodat, fchmod,
fchownat with and without AT_SYMLINK_NOFOLLOW, fchown, utimensat by path, by dirfd and by fd,
truncate, ftruncate) and the legacy syscalls by number (chmod, chown, lchown, utime, utimes,
futimesat, fchmodat2). Prints JSON: one step per call with the file's stat after it."""
import ctypes, json, os, subprocess, sys

d = sys.argv[1]
libc = ctypes.CDLL(None, use_errno=True)
# x86_64 syscall numbers of the calls libc no longer makes itself
NR = {'chmod': 90, 'chown': 92, 'lchown': 94, 'utime': 132, 'utimes': 235, 'futimesat': 261, 'fchmodat2': 452}
steps = []


def st(path, follow=True):
    s = os.stat(path) if follow else os.lstat(path)
    return {'dev': s.st_dev, 'ino': s.st_ino, 'mode': s.st_mode & 0o7777, 'uid': s.st_uid, 'gid': s.st_gid,
            'size': s.st_size, 'mtime': s.st_mtime_ns}


def step(name, path, expect, follow=True):
    steps.append({'step': name, 'path': path, 'expect': expect, 'stat': st(path, follow)})


def sys(name, *args):
    r = libc.syscall(NR[name], *args)
    if r != 0:
        raise OSError(ctypes.get_errno(), f'{name} failed')


class Timeval(ctypes.Structure):
    _fields_ = [('sec', ctypes.c_long), ('usec', ctypes.c_long)]


class Utimbuf(ctypes.Structure):
    _fields_ = [('actime', ctypes.c_long), ('modtime', ctypes.c_long)]


f = os.path.join(d, 'f.txt')
with open(f, 'w') as h:
    h.write('x' * 100)
link = os.path.join(d, 'l')
os.symlink('f.txt', link)

subprocess.run(['chmod', '600', f], check=True); step('chmod(1)', f, ['mode'])
subprocess.run(['chown', '1234:2345', f], check=True); step('chown(1)', f, ['uid', 'gid'])
subprocess.run(['touch', '-m', '-d', '2001-02-03 04:05:06.123456789', f], check=True); step('touch -m -d', f, ['mtime'])
subprocess.run(['truncate', '-s', '42', f], check=True); step('truncate(1)', f, ['size'])

os.chmod(f, 0o640); step('fchmodat', f, ['mode'])
fd = os.open(f, os.O_RDWR)
os.fchmod(fd, 0o604); step('fchmod', f, ['mode'])
os.chown(f, 11, -1); step('fchownat uid only', f, ['uid'])
os.chown(link, 12, 13, follow_symlinks=False); step('fchownat AT_SYMLINK_NOFOLLOW', link, ['uid', 'gid'], follow=False)
os.fchown(fd, -1, 14); step('fchown gid only', f, ['gid'])
os.utime(f, ns=(5, 1_000_000_123_456_789)); step('utimensat', f, ['mtime'])
dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.utime('f.txt', dir_fd=dfd); step('utimensat(dirfd) now', f, ['mtime'])
os.utime(fd, ns=(7, 1_100_000_000_000_000_007)); step('futimens', f, ['mtime'])
os.truncate(f, 7); step('truncate', f, ['size'])
os.ftruncate(fd, 3000); step('ftruncate', f, ['size'])
os.close(fd)

sys('chmod', f.encode(), 0o644); step('chmod', f, ['mode'])
sys('chown', f.encode(), 21, 22); step('chown', f, ['uid', 'gid'])
sys('lchown', link.encode(), 23, -1 & 0xffffffff); step('lchown', link, ['uid'], follow=False)
tv = (Timeval * 2)(Timeval(1, 0), Timeval(1_200_000_000, 500))
sys('utimes', f.encode(), tv); step('utimes', f, ['mtime'])
tv2 = (Timeval * 2)(Timeval(1, 0), Timeval(1_300_000_000, 0))
sys('futimesat', dfd, b'f.txt', tv2); step('futimesat', f, ['mtime'])
ub = Utimbuf(1, 1_400_000_000)
sys('utime', f.encode(), ctypes.byref(ub)); step('utime', f, ['mtime'])
sys('fchmodat2', dfd, b'f.txt', 0o611, 0); step('fchmodat2', f, ['mode'])
os.close(dfd)
print(json.dumps({'pid': os.getpid(), 'steps': steps}))
