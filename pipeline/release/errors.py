"""Why a promotion or rollback did not happen."""

from service.errors import Refusal


class PromotionRefused(Refusal):
    """The candidate may not be promoted (or the rollback made); the message lists every reason."""
