"""Reviews: one per completed job by its customer; the rating reaches the profile and matching."""
import pytest

from dispatch.errors import Conflict, Invalid, NotFound
from dispatch.models import ProviderProfile, Review
from dispatch.selectors import provider_search
from dispatch.services.lifecycle import job_complete, job_start
from dispatch.services.offers import offer_accept
from dispatch.services.reviews import review_create
from tests.conftest import book
from tests.factories import DELHI

pytestmark = pytest.mark.django_db


def completed(customer, category, provider):
    job = book(customer, category, provider)
    offer_accept(job_id=job.pk, provider=provider)
    job_start(job_id=job.pk, provider=provider)
    return job_complete(job_id=job.pk, provider=provider)


def test_review_updates_the_providers_average_and_count(completed_job, customer, provider):
    review = review_create(job_id=completed_job.pk, customer=customer, rating=4, comment="Quick and tidy")

    profile = ProviderProfile.objects.get(user=provider)
    assert (profile.rating_avg, profile.rating_count) == (4.0, 1)
    assert (review.rating, review.comment) == (4, "Quick and tidy")


def test_reviews_fold_into_an_existing_rating(customer, category, provider):
    ProviderProfile.objects.filter(user=provider).update(rating_avg=5.0, rating_count=3)

    review_create(job_id=completed(customer, category, provider).pk, customer=customer, rating=1)

    profile = ProviderProfile.objects.get(user=provider)
    assert (profile.rating_avg, profile.rating_count) == (4.0, 4)


def test_second_review_of_a_job_is_a_conflict(completed_job, customer, provider):
    review_create(job_id=completed_job.pk, customer=customer, rating=5)

    with pytest.raises(Conflict, match="already been reviewed"):
        review_create(job_id=completed_job.pk, customer=customer, rating=1)
    assert ProviderProfile.objects.get(user=provider).rating_count == 1


def test_only_a_completed_job_can_be_reviewed(in_progress_job, customer):
    with pytest.raises(Conflict, match="only a COMPLETED job"):
        review_create(job_id=in_progress_job.pk, customer=customer, rating=5)


def test_only_the_jobs_customer_can_review(completed_job, other_customer, provider):
    with pytest.raises(NotFound):
        review_create(job_id=completed_job.pk, customer=other_customer, rating=5)
    with pytest.raises(NotFound):
        review_create(job_id=completed_job.pk, customer=provider, rating=5)
    assert not Review.objects.exists()


@pytest.mark.parametrize("rating", [0, 6, -1, 4.5, True, "5"])
def test_rating_is_a_whole_number_from_1_to_5(completed_job, customer, rating):
    with pytest.raises(Invalid) as refused:
        review_create(job_id=completed_job.pk, customer=customer, rating=rating)

    assert refused.value.field == "rating"


def test_comment_is_at_most_2000_characters(completed_job, customer):
    with pytest.raises(Invalid):
        review_create(job_id=completed_job.pk, customer=customer, rating=5, comment="x" * 2001)


def test_ranking_by_rating_sees_a_new_review(customer, category, provider, other_provider):
    ProviderProfile.objects.filter(user=provider).update(rating_avg=4.0, rating_count=1)
    ProviderProfile.objects.filter(user=other_provider).update(rating_avg=4.5, rating_count=1)
    search = dict(lat=DELHI[0], lng=DELHI[1], radius_km=5, category_id=category.pk, ordering="rating")
    assert [p.user_id for p in provider_search(**search)] == [other_provider.pk, provider.pk]

    review_create(job_id=completed(customer, category, provider).pk, customer=customer, rating=5)
    review_create(job_id=completed(customer, category, other_provider).pk, customer=customer, rating=1)

    ranked = provider_search(**search)
    assert [p.user_id for p in ranked] == [provider.pk, other_provider.pk]
    assert [p.rating_avg for p in ranked] == [4.5, 2.75]
