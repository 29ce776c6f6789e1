"""A customer's review of a completed job, folded into the provider's rating (and so into matching)."""
from django.db import IntegrityError, transaction

from dispatch.errors import Conflict, Invalid, NotFound
from dispatch.index import index_provider_on_commit
from dispatch.models import Job, JobStatus, ProviderProfile, Review, User

MAX_COMMENT = 2000


def review_create(*, job_id: int, customer: User, rating: int, comment: str = "") -> Review:
    """Review a COMPLETED job once, as its customer. Locks the job, then the provider's profile.

    The provider's average and count change under the profile's row lock, so concurrent
    reviews of the same provider are all counted; the matching index gets the new rating
    after commit.
    """
    if isinstance(rating, bool) or not isinstance(rating, int) or not 1 <= rating <= 5:
        raise Invalid("rating must be a whole number from 1 to 5.", field="rating")
    if len(comment) > MAX_COMMENT:
        raise Invalid(f"comment can be at most {MAX_COMMENT} characters.", field="comment")
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
        # Folded in rather than recomputed from Review rows: imported or seeded ratings
        # have no rows behind them. The lock makes the read-modify-write safe.
        count = profile.rating_count + 1
        profile.rating_avg = min(5.0, (profile.rating_avg * profile.rating_count + rating) / count)
        profile.rating_count = count
        profile.save(update_fields=["rating_avg", "rating_count", "updated_at"])
        index_provider_on_commit(job.provider_id)
    return review
