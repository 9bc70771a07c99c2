"""Replay of exported history: mapping, exact amounts, bad rows reported, order across files."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from schemas import topics
from schemas.inputs import AccountTransaction, PosTransaction
from schemas.settings import Settings
from streams.commands.replay import command
from streams.errors import InputFileError
from streams.replay import Replay, ReplayMapping, to_fen, write_rejects

HEADER = "txn_id,merchant_id,terminal_id,event_time,amount_fen,kind,card_token,channel,mcc\n"
GOOD = "T{n},M1,T-1,2026-01-05T0{h}:00:00+08:00,{amount},approved,tkABCDEFGH,chip,5812\n"


def _pos_csv(path: Path) -> Path:
    lines = [
        HEADER,
        GOOD.format(n=1, h=9, amount=1250),  # line 2
        "T2,M1,T-1,2026-01-05T09:30:00+08:00,-5,approved,tkABCDEFGH,chip,5812\n",  # 3: negative
        "T3,M2,T-1,2026-13-01T10:00:00,700,approved,tkABCDEFGH,chip,5812\n",  # 4: no such month
        "T4,M2,T-1,2026-01-05T10:00:00+08:00,700,stolen,tkABCDEFGH,chip,5812\n",  # 5: kind
        "T5,M2,T-1,2026-01-05T10:00:00+08:00,700,approved,4111111111111111,chip,5812\n",  # 6: PAN
        "T6,M2,T-1,2026-01-05T10:00:00+08:00,700\n",  # 7: too few fields
        "\n",  # 8: blank, not a row
        'T7,"M2",T-1,2026-01-05T07:00:00+08:00,300,refund,tkABCDEFGH,qr,5812\n',  # 9: good, earlier
        "T8,,T-1,2026-01-05T08:00:00+08:00,300,approved,tkABCDEFGH,qr,5812\n",  # 10: no merchant
    ]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def test_bad_rows_are_reported_with_file_and_line(tmp_path: Path) -> None:
    path = _pos_csv(tmp_path / "pos.csv")
    replay = Replay([path], ReplayMapping(), "pos")
    rejects = tmp_path / "rejects.csv"
    assert write_rejects(replay.check(), rejects) == 6
    report = replay.report
    assert (report.read, report.accepted, report.rejected) == (8, 2, 6)
    with rejects.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["file"], int(r["line"])) for r in rows] == [
        (str(path), n) for n in (3, 4, 5, 6, 7, 10)
    ]
    reasons = {int(r["line"]): r["reason"] for r in rows}
    assert reasons == {
        3: "amount_fen",
        4: "event_time",
        5: "kind",
        6: "card_token",
        7: "row",
        10: "merchant_id",
    }
    assert "card number" in next(r["detail"] for r in rows if r["line"] == "6")
    assert orjson.loads(rows[0]["row"])["txn_id"] == "T2"
    messages = list(replay.messages())
    assert [orjson.loads(m[2])["txn_id"] for m in messages] == ["T7", "T1"]  # event-time order
    assert all(m[0] == topics.POS_TRANSACTIONS for m in messages)
    assert messages[0][1] == b"M2"
    assert messages[0][3] == datetime(2026, 1, 4, 23, 0, tzinfo=UTC)
    event = PosTransaction.model_validate_json(messages[1][2])
    assert event.amount_fen == 1250


def test_mapping_with_their_columns_codes_and_yuan(tmp_path: Path) -> None:
    export = tmp_path / "export.csv"
    export.write_text(
        "流水号;商户号;终端;交易时间;金额;类型;卡;渠道\n"
        "A1;M9;T9;2026-01-05 08:00:00;12.34;消费;tkZZZZZZZZ;插卡\n"
        "A2;M9;T9;2026-01-05 08:01:00;1,200.50;退货;tkZZZZZZZZ;扫码\n"
        "A3;M9;T9;2026-01-05 08:02:00;0.005;消费;tkZZZZZZZZ;插卡\n",
        encoding="utf-8",
    )
    mapping_file = tmp_path / "mapping.toml"
    mapping_file.write_text(
        'topic = "pos"\namount_unit = "yuan"\ntime_format = "%Y-%m-%d %H:%M:%S"\n'
        'delimiter = ";"\ntimezone = "Asia/Shanghai"\n'
        '[columns]\ntxn_id = "流水号"\nmerchant_id = "商户号"\nterminal_id = "终端"\n'
        'event_time = "交易时间"\namount_fen = "金额"\nkind = "类型"\ncard_token = "卡"\n'
        'channel = "渠道"\n'
        '[values.kind]\n"消费" = "approved"\n"退货" = "refund"\n'
        '[values.channel]\n"插卡" = "chip"\n"扫码" = "qr"\n'
        '[defaults]\nmcc = "5411"\n',
        encoding="utf-8",
    )
    replay = Replay([export], ReplayMapping.load(mapping_file), None)
    rejects = list(replay.check())
    assert [(r.line, r.reason) for r in rejects] == [(4, "amount_fen")]
    assert "whole number of fen" in rejects[0].detail
    events = [PosTransaction.model_validate_json(m[2]) for m in replay.messages()]
    assert [(e.amount_fen, e.kind.value, e.channel.value, e.mcc) for e in events] == [
        (1234, "approved", "chip", "5411"),
        (120050, "refund", "qr", "5411"),
    ]
    assert events[0].event_time == datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # 08:00 Beijing


def test_files_are_merged_in_event_time_order(tmp_path: Path) -> None:
    first = tmp_path / "a.csv"
    second = tmp_path / "b.csv"
    row = "{n},M{m},T,2026-01-05T{t}Z,100,approved,tkABCDEFGH,chip,5812\n"
    first.write_text(
        HEADER + "".join(row.format(n=f"a{t}", m=1, t=f"0{t}:00:00") for t in (1, 3, 5))
    )
    # The second file is out of order: it is sorted before the merge.
    second.write_text(
        HEADER + "".join(row.format(n=f"b{t}", m=2, t=f"0{t}:00:00") for t in (6, 2, 4))
    )
    replay = Replay([first, second], ReplayMapping(), "pos")
    assert not list(replay.check())
    ids = [orjson.loads(m[2])["txn_id"] for m in replay.messages()]
    assert ids == ["a1", "b2", "a3", "b4", "a5", "b6"]


def test_parquet_export_of_account_history(tmp_path: Path) -> None:
    path = tmp_path / "account.parquet"
    table = pa.table(
        {
            "txn_id": ["X1", "X2", "X3"],
            "account_id": ["BA1", "BA1", "BA1"],
            "merchant_id": ["M1", "M1", "M1"],
            "event_time": pa.array(
                [datetime(2026, 1, 5, 1), datetime(2026, 1, 5, 2), datetime(2026, 1, 5, 3)],
                type=pa.timestamp("s", tz="UTC"),
            ),
            "direction": ["credit", "debit", "debit"],
            "amount": pa.array(
                [Decimal("100.10"), Decimal("20.00"), Decimal("5.00")], pa.decimal128(12, 2)
            ),
            "balance": [1000.10, 980.10, 975.10],
            "category": ["pos_settlement", "utility", "pos_settlement"],
        }
    )
    pq.write_table(table, path)
    mapping = ReplayMapping(
        columns={"amount_fen": "amount", "balance_after_fen": "balance"}, amount_unit="yuan"
    )
    replay = Replay([path], mapping, "account")
    rejects = list(replay.check())
    assert [(r.line, r.reason) for r in rejects] == [(3, "row")]
    assert "must be a credit" in rejects[0].detail
    events = [AccountTransaction.model_validate_json(m[2]) for m in replay.messages()]
    assert [(e.amount_fen, e.balance_after_fen) for e in events] == [(10010, 100010), (2000, 98010)]


def test_missing_columns_and_conflicting_topics_are_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "short.csv"
    path.write_text("txn_id,merchant_id\nX,M1\n", encoding="utf-8")
    with pytest.raises(InputFileError, match="missing column"):
        list(Replay([path], ReplayMapping(), "pos").check())
    with pytest.raises(InputFileError, match="contradicts"):
        Replay([path], ReplayMapping(topic="account"), "pos")
    with pytest.raises(InputFileError, match="which topic"):
        Replay([path], ReplayMapping(), None)
    with pytest.raises(InputFileError, match="lacks"):
        Replay([path], ReplayMapping(columns={"amount": "x"}), "pos")


def test_bad_mapping_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "mapping.toml"
    path.write_text('amount_unit = "cents"\n', encoding="utf-8")
    with pytest.raises(InputFileError, match="amount_unit"):
        ReplayMapping.load(path)


def test_cli_dry_run_reports_and_writes_rejects(tmp_path: Path) -> None:
    path = _pos_csv(tmp_path / "pos.csv")
    rejects = tmp_path / "out" / "rejects.csv"
    result = CliRunner().invoke(
        command,
        [str(path), "--topic", "pos", "--dry-run", "--rejects", str(rejects)],
        obj=Settings(),
    )
    assert result.exit_code == 0, result.output
    assert "rows read: 8; accepted: 2; rejected: 6" in result.output
    assert "rejected for amount_fen: 1" in result.output
    assert rejects.read_text(encoding="utf-8").count("\n") == 7


@pytest.mark.parametrize(
    ("value", "unit", "fen"),
    [("12.34", "yuan", 1234), (" 7 ", "fen", 7), (0.1, "yuan", 10), (Decimal("3.50"), "yuan", 350)],
)
def test_exact_amounts(value: object, unit: str, fen: int) -> None:
    assert to_fen(value, unit) == fen  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["12.345", "abc", "NaN", "1.5"])
def test_inexact_amounts_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="amount"):
        to_fen(value, "fen" if value == "1.5" else "yuan")


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_yuan_text_converts_exactly(fen: int) -> None:
    text = str(Decimal(fen) / 100)
    assert to_fen(text, "yuan") == fen


def test_unreadable_files_stop_with_a_clear_error(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(
        HEADER.encode()
        + "T1,M1,T,2026-01-05T01:00:00Z,1,approved,tkABCDEFGH,chip,58é\n".encode("latin-1")
    )
    with pytest.raises(InputFileError, match="not utf-8-sig text"):
        list(Replay([latin], ReplayMapping(), "pos").check())
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(InputFileError, match=r"broken\.parquet"):
        list(Replay([broken], ReplayMapping(), "pos").check())
