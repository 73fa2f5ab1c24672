"""linkplane's AWS adapter: the only code that talks to AWS.

The reconciler calls the helpers in ``endpoints``, ``services`` and ``loadbalancers`` (or
``calls.Context.call`` directly), with a ``calls.Context`` built from ``sessions.AwsClients``
(clients and credentials per account and Region) and a ``throttlers.Limiter`` (client-side
token buckets). Every failure arrives as ``errors.AwsError``, already classified as retryable
or permanent; ``tags`` holds the ownership tags and ClientTokens that make creates crash-safe.

This package sits beneath the reconciler and knows nothing of gRPC, the database or protos.
"""
