"""Settings in the address bar (nn_tracing/ui/url.py): types, validation, the widget binding."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import pytest
from streamlit.testing.v1 import AppTest

from nn_tracing.timeaxis import using_axis
from nn_tracing.ui import url


class Order(enum.Enum):
    VALUE = "value"
    ID = "id"


@dataclass(frozen=True, kw_only=True)
class Demo:
    count: int = url.param("n", "demo.count", default=3, low=1, high=50)
    rate: float = url.param("rate", "demo.rate", default=0.5, low=0.0, high=1.0)
    name: str = url.param("name", "demo.name", default="a", choices=("a", "b"), max_length=10)
    flag: bool = url.param("flag", "demo.flag", default=False)
    layers: tuple[str, ...] = url.param("layers", "demo.layers", default=(), max_items=3)
    span: tuple[int, int] | None = url.param("span", "demo.span", default=None, sep="-")
    order: Order = url.param("order", "demo.order", default=Order.VALUE)
    epoch: int | None = url.param("epoch", "demo.epoch", default=None, per_trace=True)
    not_in_url: str = "kept out"


URL = url.PageURL(Demo, page="demo")


@pytest.mark.parametrize(
    "field, value, text",
    [
        ("count", 7, "7"),
        ("rate", 0.25, "0.25"),
        ("name", "b", "b"),
        ("flag", True, "1"),
        ("flag", False, "0"),
        ("layers", ("hidden_1", "output"), "hidden_1,output"),
        ("span", (2, 10), "2-10"),
        ("order", Order.ID, "id"),
        ("epoch", 4, "4"),
    ],
)
def test_every_type_goes_to_the_url_and_back(field: str, value: object, text: str) -> None:
    settings = Demo(**{field: value})  # type: ignore[arg-type]
    params = URL.params(settings)
    name = {"count": "n"}.get(field, field)
    assert params[name] == text
    assert URL.read(params)[field] == value


def test_settings_at_their_defaults_can_be_left_out_of_the_url() -> None:
    changed = Demo(count=7, layers=("hidden_1",))
    at_defaults = url.at_defaults(changed)
    assert "count" not in at_defaults and "layers" not in at_defaults
    assert {"rate", "name", "flag", "span", "order", "epoch", "not_in_url"} <= at_defaults
    assert URL.params(changed, hidden=at_defaults) == {"n": "7", "layers": "hidden_1"}
    assert URL.params(Demo(), hidden=url.at_defaults(Demo())) == {}


def test_none_hidden_and_empty_settings_stay_out_of_the_url() -> None:
    params = URL.params(Demo(), hidden={"rate"})
    assert "span" not in params and "epoch" not in params  # None
    assert "layers" not in params  # an empty tuple
    assert "rate" not in params  # hidden
    assert "not_in_url" not in params and "kept out" not in params.values()
    assert set(URL.names) == {"n", "rate", "name", "flag", "layers", "span", "order", "epoch"}


@dataclass(frozen=True, kw_only=True)
class Picked:
    runs: tuple[str, ...] | None = url.param("runs", "demo.runs", default=None, keep_empty=True)


def test_an_empty_selection_that_keeps_its_place_survives_the_url() -> None:
    """Choosing nothing is a choice when the default is not empty: ``runs=`` stays."""
    picked = url.PageURL(Picked, page="picked")
    assert picked.params(Picked(runs=())) == {"runs": ""}
    assert picked.read({"runs": ""}) == {"runs": ()}
    assert picked.read(picked.params(Picked(runs=("a", "b")))) == {"runs": ("a", "b")}
    assert picked.params(Picked()) == {}  # None: left out all the same
    assert picked.params(Picked(runs=()), hidden={"runs"}) == {}


@dataclass(frozen=True, kw_only=True)
class Renamed:
    mode: str = url.param(
        "mode",
        "demo.mode",
        default="global",
        choices=("global", "run"),
        aliases={"pooled": "global"},
    )
    modes: tuple[str, ...] = url.param(
        "modes", "demo.modes", default=(), choices=("global", "run"), aliases={"pooled": "global"}
    )


def test_a_renamed_value_in_an_old_link_is_read_under_its_new_name() -> None:
    renamed = url.PageURL(Renamed, page="renamed")
    assert renamed.read({"mode": "pooled", "modes": "run,pooled"}) == {
        "mode": "global",
        "modes": ("run", "global"),
    }
    assert renamed.params(Renamed(mode="global")) == {"mode": "global"}  # written as the new
    assert renamed.read({"mode": "column"}) == {}  # not an alias here: a bad value


@pytest.mark.parametrize(
    "name, text",
    [
        ("n", "abc"),
        ("n", "0"),  # below low
        ("n", "51"),  # above high
        ("n", "2.5"),
        ("rate", "nan"),
        ("rate", "inf"),
        ("rate", "1.5"),
        ("name", "c"),  # not a choice
        ("name", "a" * 11),  # too long
        ("flag", "maybe"),
        ("layers", "a,b,c,d"),  # too many items
        ("span", "2"),  # one item of two
        ("span", "a-b"),
        ("order", "random"),
        ("epoch", "E_4"),
    ],
)
def test_a_bad_value_is_left_out(name: str, text: str) -> None:
    assert URL.read({name: text}) == {}


def test_unknown_keys_are_ignored() -> None:
    found = URL.read({"n": "4", "trace": "tiny", "neuron": "E_1/L_a/n_2", "zzz": "1"})
    assert found == {"count": 4}


def test_a_time_parameter_is_named_for_the_trace_axis_and_old_links_keep_working() -> None:
    assert url.query_name("epoch", "step") == "step"
    assert url.query_name("color_epoch", "step") == "color_step"
    assert url.query_name("epoch", "epoch") == "epoch"
    assert url.query_name("layers", "step") == "layers"
    assert url.query_name("epoch") == "epoch"  # no trace shown: epochs
    assert URL.read({"epoch": "4", "step": "6"}) == {"epoch": 4}  # an epoch trace: epoch= only
    with using_axis("step"):
        assert URL.read({"step": "6"}) == {"epoch": 6}
        assert URL.read({"epoch": "4"}) == {"epoch": 4}  # a link made before step= existed
        assert URL.read({"epoch": "4", "step": "6"}) == {"epoch": 6}  # step= wins
        assert URL.read({"step": "S_6"}) == {}  # still checked


def test_a_page_cannot_declare_names_that_meet_on_a_step_trace() -> None:
    @dataclass(frozen=True)
    class Both:
        a: int = url.param("epoch", "k1", default=0)
        b: int = url.param("step", "k2", default=0)

    with pytest.raises(ValueError, match="used twice"):
        url.PageURL(Both, page="bad")


def test_per_trace_widgets_have_a_key_per_trace() -> None:
    assert URL.key("count", "run:tiny") == "demo.count"
    assert URL.key("epoch", "run:tiny") == "demo.epoch:run:tiny"


def test_a_page_cannot_declare_bad_names_or_types() -> None:
    @dataclass(frozen=True)
    class Reserved:
        trace: str = url.param("trace", "k")

    @dataclass(frozen=True)
    class Twice:
        a: int = url.param("x", "k1", default=0)
        b: int = url.param("x", "k2", default=0)

    @dataclass(frozen=True)
    class Long:
        a: int = url.param("a_very_long_parameter", "k", default=0)

    @dataclass(frozen=True)
    class Unsupported:
        a: dict = url.param("a", "k", default=None)  # type: ignore[type-arg]

    for settings in (Reserved, Twice, Long):
        with pytest.raises(ValueError):
            url.PageURL(settings, page="bad")
    with pytest.raises(TypeError):
        url.PageURL(Unsupported, page="bad")


def _page() -> None:
    """A page with three widgets bound to the URL (run by AppTest)."""
    from dataclasses import dataclass

    import streamlit as st

    from nn_tracing.ui import url

    @dataclass(frozen=True, kw_only=True)
    class Page:
        count: int = url.param("n", "page.count", low=1, high=50)
        name: str = url.param("name", "page.name", choices=("a", "b"))
        layers: tuple[str, ...] = url.param("layers", "page.layers")

    bound = url.PageURL(Page, page="test")
    bound.restore("ref")
    if not isinstance(st.session_state.get(bound.key("count")), int):  # the page's default
        st.session_state[bound.key("count")] = 3
    count = st.number_input("count", 1, 50, key=bound.key("count"))
    name = st.selectbox("name", ["a", "b"], key=bound.key("name"))
    layers = st.multiselect("layers", ["h1", "h2"], key=bound.key("layers"))
    bound.publish(Page(count=int(count), name=str(name), layers=tuple(layers)), "ref")


def test_a_shared_link_restores_the_widgets_and_a_widget_writes_the_url() -> None:
    at = AppTest.from_function(_page)
    at.query_params["n"] = "7"
    at.query_params["layers"] = "h2"
    at.query_params["other"] = "kept"
    at.run()
    assert not at.exception
    assert at.number_input[0].value == 7
    assert at.multiselect[0].value == ["h2"]
    at.selectbox[0].set_value("b").run()
    assert at.query_params["name"] == "b"
    assert at.number_input[0].value == 7  # an unchanged URL is not applied again
    assert "other" in at.query_params  # not the page's: left alone


def test_a_bad_value_in_a_link_falls_back_to_the_widget_default() -> None:
    at = AppTest.from_function(_page)
    at.query_params["n"] = "500"
    at.query_params["name"] = "<script>"
    at.run()
    assert not at.exception
    assert at.number_input[0].value == 3
    assert at.selectbox[0].value == "a"
