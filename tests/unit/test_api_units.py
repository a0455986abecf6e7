"""The units directory and desk codes over HTTP: roles (401/403), platform scope, bounded
queries, the admin reload (build_api with the app shell's wiring, the shipped files)."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from hotline.api import build_api
from tests.unit.test_api import Backend
from units.registry import DeskRegistry
from web.auth import ApiToken, TokenRegistry, token_sha256

REPO = Path(__file__).resolve().parents[2]
TOKENS = TokenRegistry(
    [
        ApiToken(name="seat", role="seat", sha256=token_sha256("seat-token"), seat="1001"),
        ApiToken(name="dali-seat", role="seat", sha256=token_sha256("dali-token"), seat="1001", platform="dali"),
        ApiToken(name="prov", role="supervisor", sha256=token_sha256("prov-token"), platform="province"),
        ApiToken(name="sup", role="supervisor", sha256=token_sha256("sup-token")),
        ApiToken(name="root", role="admin", sha256=token_sha256("admin-token")),
    ]
)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def desk_client(tmp_path: Path) -> AsyncIterator[tuple[Path, TestClient[Any, Any]]]:
    root = tmp_path / "directory"
    shutil.copytree(REPO / "directory", root)
    registry = DeskRegistry(root)
    registry.load_initial()
    client = TestClient(TestServer(build_api(Backend(), TOKENS, desk=registry)))
    await client.start_server()
    yield root, client
    await client.close()


async def test_units_need_a_token_and_show_the_platform_and_the_province(
    desk_client: tuple[Path, TestClient[Any, Any]],
) -> None:
    _, client = desk_client
    assert (await client.get("/api/v1/units")).status == 401
    assert (await client.get("/api/v1/units", headers=bearer("wrong"))).status == 401
    assert (await client.get("/api/v1/units", headers=bearer("dali-token"))).status == 403  # 大理's token, 昆明's API
    response = await client.get("/api/v1/units", headers=bearer("seat-token"))
    assert response.status == 200
    body = await response.json()
    ids = [u["id"] for u in body["units"]]
    assert body["platform"] == "kunming" and "km_housing_fund" in ids and "yn_medical_insurance" in ids
    assert not any(i.startswith("dl_") for i in ids)
    fund = next(u for u in body["units"] if u["id"] == "km_housing_fund")
    assert fund["name"] == "昆明市住房公积金管理中心" and fund["platform"] == "kunming"
    assert fund["contacts"][0] == {"number": "087100000101", "label": "业务咨询"}


async def test_units_filter_by_matter_type_and_text(desk_client: tuple[Path, TestClient[Any, Any]]) -> None:
    _, client = desk_client
    seat = bearer("seat-token")
    body = await (await client.get("/api/v1/units?matter_type=market_supervision", headers=seat)).json()
    assert [u["id"] for u in body["units"]] == [
        "km_market_supervision",
        "km_wuhua_market_supervision",
        "yn_market_supervision",
    ]
    body = await (await client.get("/api/v1/units", params={"q": "公积金"}, headers=seat)).json()
    assert [u["id"] for u in body["units"]] == ["km_housing_fund"]
    body = await (await client.get("/api/v1/units", params={"q": "五华区"}, headers=seat)).json()
    assert [u["id"] for u in body["units"]] == ["km_wuhua_market_supervision"]  # by department too
    for bad in (
        {"matter_type": "Market Supervision"},
        {"matter_type": "x" * 65},
        {"q": "长" * 65},
        {"platform": "../x"},
    ):
        response = await client.get("/api/v1/units", params=bad, headers=seat)
        assert response.status == 400, bad
        assert "error" in await response.json()


async def test_another_platforms_unit_is_invisible(desk_client: tuple[Path, TestClient[Any, Any]]) -> None:
    _, client = desk_client
    seat = bearer("seat-token")
    assert (await client.get("/api/v1/units/km_housing_fund", headers=seat)).status == 200
    assert (await (await client.get("/api/v1/units/yn_taxation", headers=seat)).json())["platform"] == "province"
    assert (await client.get("/api/v1/units/dl_erhai", headers=seat)).status == 404
    assert (await client.get("/api/v1/units/%E6%B4%B1", headers=seat)).status == 404
    assert (await client.get("/api/v1/units/" + "a" * 200, headers=seat)).status == 404
    assert (await client.get("/api/v1/units?platform=dali", headers=seat)).status == 403
    assert (await client.get("/api/v1/units/dl_erhai?platform=dali", headers=seat)).status == 403
    # the province's tokens see every platform's view
    response = await client.get("/api/v1/units/dl_erhai?platform=dali", headers=bearer("prov-token"))
    assert response.status == 200 and (await response.json())["name"] == "大理州洱海保护管理局"
    body = await (await client.get("/api/v1/units", headers=bearer("prov-token"))).json()
    assert body["platform"] == "province" and all(u["id"].startswith("yn_") for u in body["units"])


async def test_desk_codes_are_the_platforms(desk_client: tuple[Path, TestClient[Any, Any]]) -> None:
    _, client = desk_client
    assert (await client.get("/api/v1/desk/codes")).status == 401
    body = await (await client.get("/api/v1/desk/codes", headers=bearer("seat-token"))).json()
    dispositions = {d["id"]: d for d in body["dispositions"]}
    assert dispositions["dispatched"] == {"id": "dispatched", "label": "派单", "requires_case": True}
    assert "callback_scheduled" in dispositions  # 昆明's own
    pauses = {p["id"]: p for p in body["pause_reasons"]}
    assert pauses["meal"] == {"id": "meal", "label": "用餐", "counts_as_productive": False, "key": "2"}
    assert "coaching" not in pauses  # 昆明 omits it
    assert {"id": "dianchi_protection", "label": "滇池保护"} in body["matter_types"]
    body = await (await client.get("/api/v1/desk/codes?platform=dali", headers=bearer("prov-token"))).json()
    assert "coaching" in {p["id"] for p in body["pause_reasons"]}
    assert (await client.get("/api/v1/desk/codes?platform=dali", headers=bearer("sup-token"))).status == 403


async def test_reload_is_for_admins_and_keeps_the_last_good_set(desk_client: tuple[Path, TestClient[Any, Any]]) -> None:
    root, client = desk_client
    assert (await client.post("/api/v1/units/reload")).status == 401
    assert (await client.post("/api/v1/units/reload", headers=bearer("seat-token"))).status == 403
    assert (await client.post("/api/v1/units/reload", headers=bearer("sup-token"))).status == 403
    path = root / "units" / "kunming.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("name: 昆明市城市管理局", "name: 昆明市城市管理局\n    nmae: x"),
        encoding="utf-8",
    )
    response = await client.post("/api/v1/units/reload", headers=bearer("admin-token"))
    assert response.status == 422
    body = await response.json()
    assert not body["ok"] and any("kunming.yaml:" in p and "units.5.nmae: unknown key" in p for p in body["problems"])
    assert (await client.get("/api/v1/units/km_urban_management", headers=bearer("seat-token"))).status == 200
    path.write_text(path.read_text(encoding="utf-8").replace("\n    nmae: x", ""), encoding="utf-8")
    response = await client.post("/api/v1/units/reload", headers=bearer("admin-token"))
    assert response.status == 200 and (await response.json())["ok"]
