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
    if name not in TARGETS:
        raise UptlsError(f"TARGET={name}: unknown target (known: {', '.join(sorted(TARGETS))})")
    return TARGETS[name](target_bin, faults)
