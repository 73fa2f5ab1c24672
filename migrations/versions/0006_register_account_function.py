"""RegisterAccount in one round trip: `linkplane_register_account`, a PL/pgSQL function.

A registration must read the tenancy rule after it holds the AWS account id's lock, so that
it sees a registration committed while it waited; under READ COMMITTED only a later statement
takes a snapshot that late. Sent statement by statement that made five round trips (BEGIN,
the request-id claim, the lock, the guarded writes, COMMIT). A VOLATILE function takes a fresh
snapshot for each statement it runs, so called in autocommit it is one round trip, and its one
transaction is the registration's (storage/accounts.py says what it does, and why in that
order).

The lock key is the one earlier servers take (`hashtext('linkplane-account:' || id)`), so old
and new servers serialize registrations against each other during a rolling upgrade.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 21:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REGISTER_ACCOUNT = """
CREATE FUNCTION linkplane_register_account(
    p_uid uuid,
    p_name varchar,
    p_project varchar,
    p_aws_account_id varchar,
    p_display_name varchar,
    p_labels jsonb,
    p_spec jsonb,
    p_shared_with_projects jsonb,
    p_anywhere boolean,
    p_write boolean,
    p_actor varchar,
    p_audit_details jsonb,
    p_method varchar,
    p_principal varchar,
    p_request_id varchar,
    p_request_digest varchar,
    p_response bytea,
    OUT taken boolean,
    OUT allowed boolean,
    OUT registered_at timestamptz,
    OUT earlier_digest varchar,
    OUT earlier_operation_id varchar,
    OUT earlier_response bytea,
    OUT earlier_time timestamptz
)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    claimed boolean := false;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('linkplane-account:' || p_aws_account_id));
    registered_at := now();
    IF p_write AND p_request_id <> '' THEN
        INSERT INTO request_ids (method, principal, request_id, request_digest)
        VALUES (p_method, p_principal, p_request_id, p_request_digest)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS claimed = ROW_COUNT;
        IF NOT claimed THEN
            -- Used before (a retry, or a reuse the caller refuses): nothing else happens.
            SELECT request_digest, operation_id, response, create_time
              INTO earlier_digest, earlier_operation_id, earlier_response, earlier_time
              FROM request_ids
             WHERE method = p_method AND principal = p_principal AND request_id = p_request_id;
            RETURN;
        END IF;
    END IF;
    taken := EXISTS (SELECT 1 FROM accounts WHERE name = p_name);
    -- The owner is the project that registered the AWS account first; only its
    -- shared_with_projects counts (a project it was shared with cannot pass it on).
    allowed := p_anywhere OR NOT EXISTS (
        SELECT 1
          FROM (SELECT project, shared_with_projects
                  FROM accounts
                 WHERE aws_account_id = p_aws_account_id
                 ORDER BY create_time, name
                 LIMIT 1) AS owner
         WHERE owner.project <> p_project
           AND NOT owner.shared_with_projects ? ('projects/' || p_project)
    );
    IF NOT p_write THEN
        RETURN;
    END IF;
    IF taken OR NOT allowed THEN
        -- Refused: the claimed request id is released, as a rolled-back transaction would.
        IF claimed THEN
            DELETE FROM request_ids
             WHERE method = p_method AND principal = p_principal AND request_id = p_request_id;
        END IF;
        RETURN;
    END IF;
    INSERT INTO accounts (
        uid, name, project, aws_account_id, display_name, labels, spec, revision,
        create_time, update_time, shared_with_projects
    ) VALUES (
        p_uid, p_name, p_project, p_aws_account_id, p_display_name, p_labels, p_spec, 1,
        registered_at, registered_at, p_shared_with_projects
    );
    INSERT INTO audit_log (
        time, actor, action, resource, resource_uid, request_id, details, project
    ) VALUES (
        registered_at, p_actor, 'RegisterAccount', p_name, p_uid, p_request_id, p_audit_details,
        p_project
    );
    IF claimed THEN
        UPDATE request_ids SET response = p_response
         WHERE method = p_method AND principal = p_principal AND request_id = p_request_id;
    END IF;
END
$$
"""


def upgrade() -> None:
    op.execute(REGISTER_ACCOUNT)


def downgrade() -> None:
    op.execute("DROP FUNCTION linkplane_register_account")
