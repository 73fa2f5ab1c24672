"""linkplane.sim: a local AWS for PrivateLink, served over the real AWS wire protocol.

The server's dev mode, its tests and the benchmarks start it with
``linkplane.sim.server.start()`` and point aiobotocore at ``handle.endpoint_url``. It is moto
(which already speaks EC2, ELBv2, STS and Route53 over HTTP) plus what moto lacks for
PrivateLink: endpoint acceptance and connections, delays, idempotency, cross-account service
visibility, IPv6, cross-Region services, private DNS, gateway endpoints, AZ id mappings, Service
Quotas, AWS's throttling buckets, injected faults and an admin API to inspect it all. Every field
it serves is modelled or refused, never silently echoed (docs/sim.md, "Conformance").

Layout (lower modules never import higher ones):
``clocks``, ``config``, ``throttling``, ``faults``, ``zones``, ``params`` (plain mechanisms) →
``models`` → ``world`` (the cross-account registry and lock) → ``catalog``, ``addressing``,
``quotas`` → ``ec2_common`` → ``ec2_endpoints`` → ``ec2_actions``, ``elbv2_actions`` (moto
seams) → ``networks``, ``gateway``, ``admin`` (WSGI) → ``server``, ``cli``.
"""

import functools

from botocore import loaders, session


def _share_one_data_loader() -> None:
    """Make every botocore session in the process use one data loader per search path.

    moto builds botocore sessions of its own (three at import for its Region list, one for its
    account backends' Region lists), and each new session's loader parses EC2's
    multi-megabyte model and the endpoint data again: ~1.5 s of CPU per process that starts
    the simulator (bench/README.md, "The test suite's own time"). A loader only reads
    botocore's data files, so one serves every session; linkplane's own sessions share one
    already (`linkplane.server.aws.sessions`). moto's model lookups keep their own loader,
    which adds moto's extras (such as DryRunOperation's HTTP 412) to AWS's models.
    """
    session.create_loader = functools.cache(loaders.create_loader)


_share_one_data_loader()
