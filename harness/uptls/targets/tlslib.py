"""Which TLS library a target binary runs on, asked of the library itself.

`ldd BINARY` names the shared TLS library the dynamic linker picks for it
(libgnutls.so.N or libssl.so.N / libcrypto.so.N); that very file is then
asked for its version through its own API (gnutls_check_version(NULL),
OpenSSL_version(OPENSSL_VERSION)), so the answer is the library the target
runs on, not the one a header or a package said.
"""

import ctypes
import re
import subprocess


def linked_libraries(binary, env=None):
    """{soname: path} of what the dynamic linker resolves for binary."""
    try:
        out = subprocess.run(["ldd", binary], capture_output=True, text=True, timeout=10,
                             env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return dict(re.findall(r"^\s*(\S+)\s+=>\s+(/\S+)", out, re.M))


def _ask(path, func, arg):
    try:
        lib = ctypes.CDLL(path)
        f = getattr(lib, func)
    except (OSError, AttributeError):
        return None
    f.restype = ctypes.c_char_p
    f.argtypes = [ctypes.c_void_p] if arg is None else [ctypes.c_int]
    try:
        v = f(arg)
    except (OSError, ValueError):
        return None
    return v.decode(errors="replace") if v else None


def tls_library(binary, env=None):
    """'GnuTLS 3.7.9', 'OpenSSL 3.0.17 1 Jul 2025' (without the date) or '?'."""
    libs = linked_libraries(binary, env)
    for soname, path in libs.items():
        if soname.startswith("libgnutls.so"):
            v = _ask(path, "gnutls_check_version", None)
            return f"GnuTLS {v}" if v else f"GnuTLS ({soname})"
    for soname, path in libs.items():
        if soname.startswith(("libcrypto.so", "libssl.so")):
            v = _ask(path, "OpenSSL_version", 0)  # in libcrypto, reachable from libssl
            if v:
                return " ".join(v.split()[:2])
    for soname in libs:
        if soname.startswith(("libssl.so", "libcrypto.so")):
            return f"OpenSSL ({soname})"
    return "?"
