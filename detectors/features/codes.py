"""Small integer codes for event kinds and account categories, and the stable hashes of ids."""

from __future__ import annotations

import zlib
from hashlib import blake2b

from schemas.inputs import AccountCategory, Direction, PosKind

POS_APPROVED = 0
POS_DECLINED = 1
POS_REFUND = 2
POS_CHARGEBACK = 3
POS_REVERSAL = 4

#: PosKind -> the code taken by :func:`detectors.features.step_pos`.
POS_KIND_CODES: dict[PosKind, int] = {
    PosKind.APPROVED: POS_APPROVED,
    PosKind.DECLINED: POS_DECLINED,
    PosKind.REFUND: POS_REFUND,
    PosKind.CHARGEBACK: POS_CHARGEBACK,
    PosKind.REVERSAL: POS_REVERSAL,
}

#: Account categories in a fixed order: code = 2 * index + (1 for a debit, 0 for a credit).
ACCOUNT_CATEGORIES: tuple[AccountCategory, ...] = tuple(AccountCategory)
_CATEGORY_INDEX = {category: i for i, category in enumerate(ACCOUNT_CATEGORIES)}
#: A transfer out that names a counterparty bank gets its own code: money leaving the bank.
TRANSFER_OUT_OTHER_BANK = 2 * len(ACCOUNT_CATEGORIES)
ACCOUNT_CODE_COUNT = TRANSFER_OUT_OTHER_BANK + 1


def _code(category: AccountCategory, direction: Direction) -> int:
    return 2 * _CATEGORY_INDEX[category] + (direction is Direction.DEBIT)


ACCOUNT_CODES: dict[tuple[AccountCategory, Direction], int] = {
    (category, direction): _code(category, direction)
    for category in ACCOUNT_CATEGORIES
    for direction in Direction
}
TRANSFER_OUT = _code(AccountCategory.TRANSFER_OUT, Direction.DEBIT)
POS_SETTLEMENT = _code(AccountCategory.POS_SETTLEMENT, Direction.CREDIT)
TRANSFER_OWN_OTHER_BANK = _code(AccountCategory.TRANSFER_OWN_OTHER_BANK, Direction.DEBIT)
LOAN_REPAYMENT_OTHER = _code(AccountCategory.LOAN_REPAYMENT_OTHER, Direction.DEBIT)
CASH_WITHDRAWAL = _code(AccountCategory.CASH_WITHDRAWAL, Direction.DEBIT)
RETURNED_ITEM_CODES = frozenset(
    ACCOUNT_CODES[(AccountCategory.RETURNED_ITEM, direction)] for direction in Direction
)
#: Whether a code is money going out.
CODE_IS_DEBIT: tuple[bool, ...] = tuple(
    code == TRANSFER_OUT_OTHER_BANK or code % 2 == 1 for code in range(ACCOUNT_CODE_COUNT)
)
#: Payments whose regularity is tracked (months paid, days since), by their debit code.
REGULAR_PAYMENTS: tuple[tuple[str, int], ...] = (
    ("payroll", _code(AccountCategory.PAYROLL, Direction.DEBIT)),
    ("tax", _code(AccountCategory.TAX, Direction.DEBIT)),
    ("utility", _code(AccountCategory.UTILITY, Direction.DEBIT)),
)
#: Debit code -> index in REGULAR_PAYMENTS.
REGULAR_INDEX: dict[int, int] = {code: i for i, (_, code) in enumerate(REGULAR_PAYMENTS)}


def account_code(
    category: AccountCategory, direction: Direction, counterparty_bank_code: str | None = None
) -> int:
    """The code of an account booking, as taken by :func:`detectors.features.step_account`.

    >>> code = account_code(AccountCategory.TRANSFER_OUT, Direction.DEBIT, "ICBC")
    >>> code == TRANSFER_OUT_OTHER_BANK
    True
    >>> account_code(AccountCategory.POS_SETTLEMENT, Direction.CREDIT) == POS_SETTLEMENT
    True
    """
    code = ACCOUNT_CODES[(category, direction)]
    if code == TRANSFER_OUT and counterparty_bank_code:
        return TRANSFER_OUT_OTHER_BANK
    return code


def card_hash(card_token: str) -> int:
    """Stable 64-bit hash of a card token (the distinct-card sketch needs good bits).

    >>> card_hash("tok_12345678") == card_hash("tok_12345678")
    True
    """
    return int.from_bytes(blake2b(card_token.encode(), digest_size=8).digest(), "little")


def pos_txn_hash(txn_id: str) -> int:
    """Stable 32-bit hash of a POS transaction id, for de-duplication."""
    return zlib.crc32(txn_id.encode())


def account_txn_hash(txn_id: str) -> int:
    """Stable 32-bit hash of an account transaction id; differs from the POS hash of the same id."""
    return zlib.crc32(txn_id.encode(), 0x5EED)


def lender_id(counterparty_bank_code: str | None) -> int:
    """16-bit id of another lender from its bank code; 0 when the code is missing."""
    if not counterparty_bank_code:
        return 0
    return zlib.crc32(counterparty_bank_code.encode()) % 0xFFFF + 1
