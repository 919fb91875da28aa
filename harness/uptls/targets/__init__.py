"""Target adapters, by name (make conformance TARGET=NAME)."""

from .. import UptlsError
from .apache import ApacheTarget
from .caddy import CaddyTarget
from .haproxy import HaproxyTarget
from .nginx import NginxTarget
from .nginx_stream import NginxStreamTarget
from .node_http_proxy import NodeHttpProxyTarget
from .reference import ReferenceTarget
from .squid import SquidOpensslTarget, SquidTarget
from .stunnel import StunnelTarget
from .trafficserver import TrafficserverTarget

TARGETS = {t.name: t for t in (ReferenceTarget, NginxTarget, HaproxyTarget,
                                        NginxStreamTarget, ApacheTarget,
                                        StunnelTarget, CaddyTarget,
                                        NodeHttpProxyTarget,
                                        SquidTarget, SquidOpensslTarget, TrafficserverTarget)}


def get(name, target_bin=None, faults=()):
    if name.startswith("exec:"):
        # An adapter program in any language (docs/adapter-protocol.md).
        from .exec import ExecTarget
        if not name[5:]:
            raise UptlsError("TARGET=exec:PATH: give the path of the adapter program")
        return ExecTarget(name[5:], target_bin, faults)
    if name not in TARGETS:
        raise UptlsError(f"TARGET={name}: unknown target (known: {', '.join(sorted(TARGETS))}, "
                         "or exec:PATH for an adapter program)")
    return TARGETS[name](target_bin, faults)
