"""Django admin for ops: read-mostly views of the domain (state changes go through services)."""
from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from dispatch.models import Event, Job, Offer, ProviderProfile, Review, ServiceCategory, ServiceItem, User
from dispatch.services.accounts import user_deactivate


@admin.register(User)
class DispatchUserAdmin(UserAdmin):
    list_display = ("username", "name", "role", "phone", "is_staff")
    list_filter = ("role", "is_staff")
    fieldsets = (*UserAdmin.fieldsets, ("Dispatch", {"fields": ("role", "name", "phone")}))

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            user_deactivate(user=obj)  # ends their tokens and closes their sockets


class ServiceItemInline(admin.TabularInline):
    model = ServiceItem
    extra = 0


@admin.register(ServiceCategory)
class ServiceCategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "offer_timeout_s", "batch_size")
    inlines = [ServiceItemInline]


@admin.register(ProviderProfile)
class ProviderProfileAdmin(admin.ModelAdmin):
    list_display = ("user", "is_online", "rating_avg", "rating_count", "acceptance_rate", "last_location_at")
    list_filter = ("is_online", "categories")
    raw_id_fields = ("user",)


class OfferInline(admin.TabularInline):
    model = Offer
    extra = 0
    can_delete = False
    readonly_fields = ("provider", "rank", "score", "score_breakdown", "status", "offered_at", "expires_at", "responded_at")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "status", "category", "customer", "provider", "total_price", "created_at")
    list_filter = ("status", "category")
    readonly_fields = ("status", "provider", "total_price", "commission_amount")
    raw_id_fields = ("customer", "requested_provider")
    inlines = [OfferInline]


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "user", "actor", "job", "created_at")
    list_filter = ("name",)
    raw_id_fields = ("user", "actor", "job", "offer")


admin.site.register(Review)
