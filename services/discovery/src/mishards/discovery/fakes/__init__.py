"""In-process HTTP servers that follow the Consul and Kubernetes APIs closely enough for tests.

Neither Consul nor a Kubernetes API server runs on the test machines; these fakes are
driven through the real `py-consul` and `kubernetes` clients by the conformance suite
and the end-to-end tests. They bind loopback only.
"""

from mishards.discovery.fakes.consul import FakeConsul
from mishards.discovery.fakes.kubernetes import FakeKubernetes, make_pod

__all__ = ["FakeConsul", "FakeKubernetes", "make_pod"]
