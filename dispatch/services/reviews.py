"""Reviews of a completed job: the customer's of the provider (folded into their rating, and so into matching), and the
provider's of the customer (folded into the customer's rating, which the offers providers see carry)."""
from django.db import IntegrityError, transaction

from dispatch.errors import Conflict, Invalid, NotFound
from dispatch.index import index_provider_on_commit
from dispatch.models import CustomerRating, Job, JobStatus, ProviderProfile, Review, User

MAX_COMMENT = 2000


def _check(rating, comment: str) -> None:
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise Invalid("rating must be a whole number from 1 to 5.", field="rating")
    if len(comment) > MAX_COMMENT:
        raise Invalid(f"comment can be at most {MAX_COMMENT} characters.", field="comment")


def _folded(average: float, count: int, rating: int) -> tuple[float, int]:
    """An average and count with one more rating. Folded in rather than recomputed from the rows: imported or
    seeded ratings have none behind them. The caller holds the row's lock, so the read-modify-write is safe."""
    return min(5.0, (average * count + rating) / (count + 1)), count + 1


def review_create(*, job_id: int, customer: User, rating: int, comment: str = "") -> Review:
    """Review a COMPLETED job once, as its customer. Locks the job, then the provider's profile.

    The provider's average and count change under the profile's row lock, so concurrent
    reviews of the same provider are all counted; the matching index gets the new rating
    after commit.
    """
    _check(rating, comment)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, customer=customer).first()
        if job is None:
            raise NotFound(f"Job {job_id} not found.")
        if job.status != JobStatus.COMPLETED:
            raise Conflict(f"Job {job.pk} is {job.status}; only a COMPLETED job can be reviewed.")
        if Review.objects.filter(job=job).exists():
            raise Conflict(f"Job {job.pk} has already been reviewed.")
        try:
            with transaction.atomic():
                review = Review.objects.create(job=job, rating=rating, comment=comment)
        except IntegrityError as exc:
            raise Conflict(f"Job {job.pk} has already been reviewed.") from exc
        profile = ProviderProfile.objects.select_for_update().get(user_id=job.provider_id)
        profile.rating_avg, profile.rating_count = _folded(profile.rating_avg, profile.rating_count, rating)
        profile.save(update_fields=["rating_avg", "rating_count", "updated_at"])
        index_provider_on_commit(job.provider_id)
    return review


def customer_rating_create(*, job_id: int, provider: User, rating: int, comment: str = "") -> CustomerRating:
    """Rate the customer of a COMPLETED job once, as its provider. Locks the job, then the customer's row.

    The customer's average and count change under their row lock, so concurrent ratings are all counted.
    """
    _check(rating, comment)
    with transaction.atomic():
        job = Job.objects.select_for_update().filter(pk=job_id, provider=provider).first()
        if job is None:
            raise NotFound(f"Job {job_id} not found.")
        if job.status != JobStatus.COMPLETED:
            raise Conflict(f"Job {job.pk} is {job.status}; only a COMPLETED job's customer can be rated.")
        try:
            with transaction.atomic():
                rated = CustomerRating.objects.create(job=job, rating=rating, comment=comment)
        except IntegrityError as exc:
            raise Conflict(f"You already rated the customer of job {job.pk}.") from exc
        customer = User.objects.select_for_update().get(pk=job.customer_id)
        customer.customer_rating_avg, customer.customer_rating_count = _folded(
            customer.customer_rating_avg, customer.customer_rating_count, rating)
        customer.save(update_fields=["customer_rating_avg", "customer_rating_count"])
    return rated
