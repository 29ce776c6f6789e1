"""A customer's review of a completed job, folded into the provider's rating."""
from django.db import IntegrityError, transaction

from dispatch.errors import Conflict, NotFound
from dispatch.index import index_provider_on_commit
from dispatch.models import Job, JobStatus, ProviderProfile, Review, User


def review_create(*, job_id: int, customer: User, rating: int, comment: str = "") -> Review:
    """Review a COMPLETED job once; updates the provider's average. Locks the job, then the profile."""
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
        total = profile.rating_avg * profile.rating_count + rating
        profile.rating_count += 1
        profile.rating_avg = total / profile.rating_count
        profile.save(update_fields=["rating_avg", "rating_count", "updated_at"])
        index_provider_on_commit(job.provider_id)
    return review
