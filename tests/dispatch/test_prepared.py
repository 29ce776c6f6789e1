"""Prepared queries answer exactly as the ORM's querysets do, with new values each run, and refuse what they cannot keep."""
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import F
from django.db.transaction import TransactionManagementError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dispatch.models import Job, ProviderProfile
from dispatch.prepared import Prepared, PreparedUpdate
from tests.conftest import book

pytestmark = pytest.mark.django_db

JOB_WITH_PEOPLE = Prepared(
    lambda job_id: Job.objects.select_related("customer", "category").filter(pk=job_id)[:1], job_id=int
)
JOBS_OF = Prepared(
    lambda customer_id, since: Job.objects.filter(customer_id=customer_id, created_at__gte=since).order_by("pk")
    .values_list("pk", "status"),
    customer_id=int, since=timezone.datetime,
)
@contextmanager
def sql_sent():
    """The SQL texts Django sends meanwhile, in order."""
    sent = []

    def record(execute, sql, params, many, context):
        sent.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield sent


LOCKED_JOB = Prepared(lambda job_id: Job.objects.select_for_update(of=("self",)).filter(pk=job_id)[:1], job_id=int)


def test_a_prepared_query_returns_the_same_instances_and_relations_as_the_orm(customer, category, other_customer):
    first, second = book(customer, category), book(other_customer, category)

    for job in (first, second):
        got = JOB_WITH_PEOPLE.first(job_id=job.pk)
        expected = Job.objects.select_related("customer", "category").get(pk=job.pk)
        assert (got.pk, got.status, got.latitude, got.created_at) == (
            expected.pk, expected.status, expected.latitude, expected.created_at
        )
        # select_related came along: no query to reach them.
        with CaptureQueriesContext(connection) as queries:
            assert (got.customer.email, got.category.slug) == (expected.customer.email, expected.category.slug)
        assert len(queries) == 0
    assert JOB_WITH_PEOPLE.first(job_id=10**6) is None


def test_each_run_swaps_in_its_own_values_datetimes_included(customer, category, other_customer):
    mine = [book(customer, category) for _ in range(3)]
    book(other_customer, category)
    since = Job.objects.get(pk=mine[1].pk).created_at

    assert JOBS_OF.all(customer_id=customer.pk, since=since - timedelta(days=1)) == [(j.pk, j.status) for j in mine]
    assert JOBS_OF.all(customer_id=customer.pk, since=since) == [(j.pk, j.status) for j in mine[1:]]
    assert JOBS_OF.all(customer_id=other_customer.pk, since=since + timedelta(days=1)) == []


def test_one_statement_per_run_and_the_sql_is_built_once(customer, category):
    job = book(customer, category)
    JOB_WITH_PEOPLE.first(job_id=job.pk)

    with CaptureQueriesContext(connection) as queries:
        JOB_WITH_PEOPLE.first(job_id=job.pk)
        JOB_WITH_PEOPLE.first(job_id=job.pk + 1)
    assert len(queries) == 2 and queries[0]["sql"].split("WHERE")[0] == queries[1]["sql"].split("WHERE")[0]


def test_converters_are_asked_once_per_connection_and_every_run_still_converts(customer, category, monkeypatch):
    from django.db.models.sql.compiler import SQLCompiler

    from dispatch.models import Offer

    offers = Prepared(lambda provider_id: Offer.objects.filter(provider_id=provider_id)
                      .values_list("score_breakdown", "score"), provider_id=int)
    asked = []
    real = SQLCompiler.get_converters
    for n in range(3):
        Offer.objects.create(job=book(customer, category), provider=customer, rank=1, score=0.5 + n, status="EXPIRED",
                             score_breakdown={"distance": 1.5 + n, "n": n}, offered_at=timezone.now(),
                             expires_at=timezone.now())
        with monkeypatch.context() as patch:
            patch.setattr(SQLCompiler, "get_converters", lambda self, exprs: asked.append(1) or real(self, exprs))
            rows = offers.all(provider_id=customer.pk)
        # JSON comes back as dicts (a converter's work on every run), one more row each time.
        assert sorted(breakdown["n"] for breakdown, _ in rows) == list(range(n + 1))
    assert len(asked) == 1


@pytest.mark.django_db(transaction=True)
def test_a_locking_query_needs_a_transaction_as_the_orm_does(customer, category):
    job = book(customer, category)
    with transaction.atomic():
        assert LOCKED_JOB.first(job_id=job.pk).pk == job.pk
    with pytest.raises(TransactionManagementError):
        LOCKED_JOB.first(job_id=job.pk)


def test_a_prepared_update_changes_the_rows_it_names_with_each_runs_values(provider, other_provider):
    rate = PreparedUpdate(
        lambda provider_id, answered, now: (
            ProviderProfile.objects.filter(user_id=provider_id),
            {"acceptance_rate": F("acceptance_rate") * 0.5 + answered, "updated_at": now},
        ),
        provider_id=int, answered=float, now=timezone.datetime,
    )
    ProviderProfile.objects.update(acceptance_rate=1.0)
    then = timezone.now() + timedelta(minutes=5)

    assert rate.run(provider_id=provider.pk, answered=0.25, now=then) == 1
    assert rate.run(provider_id=10**6, answered=0.0, now=then) == 0

    mine, theirs = (ProviderProfile.objects.get(user=p) for p in (provider, other_provider))
    assert mine.acceptance_rate == pytest.approx(0.75) and mine.updated_at == then
    assert theirs.acceptance_rate == 1.0 and theirs.updated_at != then


def test_a_prepared_update_with_returning_answers_the_rows_as_the_update_left_them(provider, other_provider):
    halve = PreparedUpdate(
        lambda provider_id: (ProviderProfile.objects.filter(user_id=provider_id),
                             {"acceptance_rate": F("acceptance_rate") * 0.5}),
        returning=("acceptance_rate", "user"), provider_id=int,
    )
    ProviderProfile.objects.update(acceptance_rate=0.8)

    assert halve.run_returning(provider_id=provider.pk) == [(pytest.approx(0.4), provider.pk)]
    assert halve.run_returning(provider_id=10**6) == []
    assert halve.run_returning(provider_id=2**70) == []  # beyond any id: nothing to change
    assert ProviderProfile.objects.get(user=other_provider).acceptance_rate == 0.8
    with pytest.raises(ImproperlyConfigured):
        PreparedUpdate(lambda provider_id: (ProviderProfile.objects.filter(user_id=provider_id), {"rating_count": 0}),
                       provider_id=int).run_returning(provider_id=provider.pk)


def test_an_argument_that_never_reaches_the_sql_is_refused_when_compiled(customer, category):
    book(customer, category)
    dropped = Prepared(lambda job_id: Job.objects.all()[:1], job_id=int)
    with pytest.raises(ImproperlyConfigured, match="job_id"):
        dropped.first(job_id=1)
    # `__in` spreads a list over one placeholder per element: the SQL would change with its length.
    with pytest.raises(ImproperlyConfigured, match="ids"):
        Prepared(lambda ids: Job.objects.filter(pk__in=ids), ids=list).all(ids=[1, 2])
    with pytest.raises(ImproperlyConfigured):
        Prepared(lambda flag: Job.objects.filter(pk=flag), flag=bool)


def test_any_of_takes_a_list_of_any_length_as_one_parameter(customer, category, other_customer):
    jobs = [book(customer, category), book(other_customer, category), book(customer, category)]
    assert set(Job.objects.filter(customer__any_of=[customer.pk]).values_list("pk", flat=True)) == {
        jobs[0].pk, jobs[2].pk
    }
    of_jobs = Prepared(lambda ids: Job.objects.filter(pk__any_of=ids).order_by("pk").values_list("pk", flat=True),
                       ids=list)

    with sql_sent() as sent:
        assert of_jobs.all(ids=[jobs[2].pk, jobs[0].pk]) == [jobs[0].pk, jobs[2].pk]
        assert of_jobs.all(ids=[j.pk for j in jobs] + [10**6]) == [j.pk for j in jobs]
        assert of_jobs.all(ids=[]) == []
    assert len(sent) == 3 and len(set(sent)) == 1  # one SQL text whatever the list's length


@pytest.mark.postgres
def test_a_one_element_list_runs_its_own_equality_form_with_the_same_rows(customer, category, other_customer):
    """PostgreSQL planned `= ANY($1)` afresh at every run for a one-element array; such a list gets `= $1`."""
    jobs = [book(customer, category), book(other_customer, category)]
    of_jobs = Prepared(lambda ids: Job.objects.filter(pk__any_of=ids).order_by("pk").values_list("pk", "status"),
                       ids=list)
    with sql_sent() as sent:
        alone = [of_jobs.all(ids=[job.pk]) for job in jobs]
        both = of_jobs.all(ids=[job.pk for job in jobs])

    assert alone == [[row] for row in both] and len(both) == 2
    assert "ANY" not in sent[0] and sent[0] == sent[1]  # one text for every one-element list
    assert "ANY" in sent[2]


def test_a_run_must_name_every_argument(customer, category):
    job = book(customer, category)
    with pytest.raises(TypeError):
        JOB_WITH_PEOPLE.first(pk=job.pk)


def test_an_id_no_column_holds_matches_nothing_as_with_the_orm(customer, category):
    book(customer, category)
    assert JOB_WITH_PEOPLE.first(job_id=2**70) is None and JOB_WITH_PEOPLE.first(job_id=-(2**70)) is None
    touch = PreparedUpdate(lambda job_id: (Job.objects.filter(pk=job_id), {"description": "x"}), job_id=int)
    assert touch.run(job_id=2**64) == 0


def test_insert_row_writes_what_create_writes_and_sets_the_id(customer, category):
    from decimal import Decimal

    from dispatch.models import Event, Transfer
    from dispatch.prepared import insert_row

    job = book(customer, category)
    payload = {"nested": {"list": [1, "two", None]}, "text": "ünïcode"}

    mine = insert_row(Event(user=customer, job=job, name="JOB_CREATED", payload=payload))
    theirs = Event.objects.create(user=customer, job=job, name="JOB_CREATED", payload=payload)

    assert mine.pk is not None and mine.pk != theirs.pk and not mine._state.adding
    read = Event.objects.get(pk=mine.pk)
    assert (read.user_id, read.job_id, read.name, read.payload, read.pushed) == (
        theirs.user_id, theirs.job_id, theirs.name, theirs.payload, theirs.pushed
    )
    assert read.created_at is not None
    money = insert_row(Transfer(kind="COMMISSION", reference="r-1", amount=Decimal("12.34"), job=job, memo="m"))
    assert Transfer.objects.get(pk=money.pk).amount == Decimal("12.34")


def test_insert_row_raises_the_databases_refusal_and_the_transaction_rolls_back_as_with_create(customer, category):
    from decimal import Decimal

    from django.db import IntegrityError

    from dispatch.models import Transfer
    from dispatch.prepared import insert_row

    job = book(customer, category)
    insert_row(Transfer(kind="COMMISSION", reference="once", amount=Decimal("1.00"), job=job))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_row(Transfer(kind="COMMISSION", reference="once", amount=Decimal("2.00"), job=job))
    assert list(Transfer.objects.filter(reference="once").values_list("amount", flat=True)) == [Decimal("1.00")]


def test_update_row_saves_the_named_fields_stamps_auto_now_and_refuses_a_missing_row(customer, category, provider):
    from django.db import DatabaseError

    from dispatch.prepared import update_row

    job = book(customer, category)
    before = Job.objects.get(pk=job.pk)
    job.status, job.provider, job.description = "ASSIGNED", provider, "not saved"
    update_row(job, ["status", "provider", "updated_at"])

    read = Job.objects.get(pk=job.pk)
    assert (read.status, read.provider_id, read.description) == ("ASSIGNED", provider.pk, before.description)
    assert read.updated_at > before.updated_at
    job.status, job.provider = "PENDING", None
    update_row(job, ["status", "provider_id"])  # an attname, as save() takes it
    assert Job.objects.filter(pk=job.pk, provider__isnull=True, status="PENDING").exists()

    gone = Job.objects.get(pk=job.pk)
    Job.objects.filter(pk=job.pk).delete()
    with pytest.raises(DatabaseError, match="did not affect any rows"):
        update_row(gone, ["status"])


def test_update_rows_saves_each_rows_own_values_in_one_statement_and_refuses_a_missing_row(customer, provider):
    from decimal import Decimal

    from django.db import DatabaseError

    from dispatch.models import Wallet
    from dispatch.prepared import update_rows
    from dispatch.services.wallet import wallet_of

    first, second = wallet_of(provider), wallet_of(customer)  # a provider's wallet may go below zero
    untouched = Wallet.objects.exclude(pk__in=[first.pk, second.pk]).values_list("pk", "balance")
    before = dict(untouched)
    first.balance, second.balance = Decimal("-12.34"), Decimal("56.78")
    with CaptureQueriesContext(connection) as sent:
        update_rows([first, second], ["balance", "updated_at"])

    assert len(sent) == 1
    read = dict(Wallet.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "balance"))
    assert read == {first.pk: Decimal("-12.34"), second.pk: Decimal("56.78")}
    assert dict(untouched) == before
    assert Wallet.objects.get(pk=first.pk).updated_at == first.updated_at  # auto_now stamped and saved

    gone = Wallet.objects.get(pk=second.pk)
    gone.pk = 2_000_000_000
    with pytest.raises(DatabaseError, match="affected 1"), transaction.atomic():
        update_rows([first, gone], ["balance"])


def test_a_prepared_delete_removes_only_the_rows_its_values_name_and_refuses_a_model_with_dependents(
    customer, category
):
    from dispatch.models import Message
    from dispatch.prepared import PreparedDelete

    first, second = book(customer, category), book(customer, category)
    for job in (first, first, second):
        Message.objects.create(job=job, sender=customer, content="hello")
    messages_of = PreparedDelete(lambda job_id: Message.objects.filter(job_id=job_id), job_id=int)

    assert messages_of.run(job_id=first.pk) == 2 and messages_of.run(job_id=first.pk) == 0
    assert list(Message.objects.values_list("job_id", flat=True)) == [second.pk]
    with pytest.raises(ImproperlyConfigured, match="dependents"):
        PreparedDelete(lambda job_id: Job.objects.filter(pk=job_id), job_id=int).run(job_id=first.pk)


def test_insert_rows_writes_a_few_rows_in_one_statement_and_sets_each_id(customer, category):
    from dispatch.models import Message
    from dispatch.prepared import INSERT_ROWS_MAX, insert_rows

    job = book(customer, category)
    few = [Message(job=job, sender=customer, content=f"m{n}") for n in range(3)]
    with CaptureQueriesContext(connection) as queries:
        insert_rows(few)
    assert len(queries) == 1
    assert [(m.pk, m.content) for m in few] == list(Message.objects.order_by("pk").values_list("pk", "content"))

    many = insert_rows([Message(job=job, sender=customer, content="x") for _ in range(INSERT_ROWS_MAX + 1)])
    assert all(m.pk for m in many) and Message.objects.count() == 3 + INSERT_ROWS_MAX + 1


def test_insert_with_children_books_a_parent_and_its_children_linked_and_refuses_both_on_a_duplicate(customer, provider):
    from decimal import Decimal

    from django.db import IntegrityError

    from dispatch.models import LedgerEntry, Transfer
    from dispatch.prepared import insert_with_children
    from dispatch.services.wallet import wallet_of

    paying, paid = wallet_of(provider), wallet_of(customer)
    transfer = Transfer(kind="COMMISSION", reference="parent-and-children", amount=Decimal("7.00"))
    entries = [LedgerEntry(wallet=paying, amount=Decimal("-7.00"), balance_after=Decimal("-7.00")),
               LedgerEntry(wallet=paid, amount=Decimal("7.00"), balance_after=Decimal("7.00"))]
    with CaptureQueriesContext(connection) as sent:
        insert_with_children(transfer, entries, "transfer")

    assert len(sent) == (1 if connection.vendor == "postgresql" else 2)
    assert transfer.pk is not None and all(entry.pk is not None for entry in entries)
    read = list(LedgerEntry.objects.filter(transfer=transfer).order_by("pk").values_list("pk", "wallet_id", "amount"))
    assert read == [(entries[0].pk, paying.pk, Decimal("-7.00")), (entries[1].pk, paid.pk, Decimal("7.00"))]
    assert entries[0].transfer is transfer

    again = Transfer(kind="COMMISSION", reference="parent-and-children", amount=Decimal("7.00"))
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_with_children(again, [LedgerEntry(wallet=paid, amount=Decimal("1.00"), balance_after=Decimal("8.00"))],
                             "transfer")
    assert LedgerEntry.objects.filter(transfer__reference="parent-and-children").count() == 2


def test_insert_row_unless_taken_is_none_for_a_row_a_unique_constraint_holds_and_the_transaction_goes_on(
    customer, category, provider, other_provider
):
    from django.db import IntegrityError

    from dispatch.models import Offer
    from dispatch.prepared import insert_row_unless_taken

    first, second = book(customer, category), book(customer, category)
    now = timezone.now()

    def offer(job, who, **fields):
        return Offer(job=job, provider=who, offered_at=now, expires_at=now + timedelta(seconds=30), **fields)

    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        live = insert_row_unless_taken(offer(first, provider))
        assert insert_row_unless_taken(offer(second, provider)) is None  # one live offer per provider
        assert insert_row_unless_taken(offer(first, provider, status="EXPIRED")) is None  # one offer per job and provider
        other = insert_row_unless_taken(offer(first, other_provider))  # the transaction is still usable
    assert live.pk and other.pk and not live._state.adding
    assert not any("SAVEPOINT" in q["sql"] for q in queries.captured_queries)
    assert set(Offer.objects.values_list("job_id", "provider_id")) == {(first.pk, provider.pk), (first.pk, other_provider.pk)}
    with pytest.raises(IntegrityError), transaction.atomic():  # a check constraint is no conflict: it raises
        insert_row_unless_taken(offer(second, other_provider, status="NOT A STATUS"))


def _prepared_on_this_connection() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.postgres
def test_postgresql_prepares_a_prepared_query_once_the_connection_has_run_it_a_few_times(customer, category):
    job = book(customer, category)
    for _ in range(connection.connection.prepare_threshold + 1):
        with transaction.atomic():
            assert LOCKED_JOB.first(job_id=job.pk).pk == job.pk
        Job.objects.filter(pk=job.pk).first()  # the ORM's own statement, bound on the client

    prepared = _prepared_on_this_connection()
    assert any(text.startswith("SELECT") and "FOR UPDATE" in text and "$1" in text for text in prepared), prepared
    # Only the hot path's statements are prepared: the ORM's own are not.
    assert not any("FOR UPDATE" not in text and "dispatch_job" in text for text in prepared), prepared
    # A prepared run still goes through Django's cursor, so its execute wrappers (bench.hotpath's counts) see it.
    seen = []

    def count(execute, sql, params, many, context):
        seen.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count), transaction.atomic():
        assert LOCKED_JOB.first(job_id=job.pk).pk == job.pk
    assert [sql for sql in seen if "SAVEPOINT" not in sql] == [sql for sql in seen if "FOR UPDATE" in sql] != []


@pytest.mark.postgres
def test_prepared_statements_can_be_turned_off_for_a_pooler_that_does_not_keep_them(settings, customer, category):
    settings.DATABASE_PREPARED_STATEMENTS = False
    job = book(customer, category)
    before = len(_prepared_on_this_connection())
    for _ in range(connection.connection.prepare_threshold + 1):
        with transaction.atomic():
            assert LOCKED_JOB.first(job_id=job.pk).pk == job.pk
        assert JOBS_OF.all(customer_id=customer.pk, since=job.created_at) == [(job.pk, job.status)]

    assert len(_prepared_on_this_connection()) == before


@pytest.mark.postgres
def test_a_prepared_query_is_not_prepared_while_queries_are_logged_so_the_log_shows_its_sql(customer, category):
    job = book(customer, category)
    with CaptureQueriesContext(connection) as queries:
        for _ in range(connection.connection.prepare_threshold + 1):
            with transaction.atomic():
                assert LOCKED_JOB.first(job_id=job.pk).pk == job.pk

    assert all(str(job.pk) in query["sql"] for query in queries.captured_queries if "FOR UPDATE" in query["sql"])
    assert not any("FOR UPDATE" in text for text in _prepared_on_this_connection())
