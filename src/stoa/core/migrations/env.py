"""Alembic environment: runs on the connection Stoa hands it, never on its own."""

from alembic import context

from stoa.core.schema import Base

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` run from a shell: build a connection from the URL
    from sqlalchemy import create_engine

    connection = create_engine(context.config.get_main_option("sqlalchemy.url")).connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
