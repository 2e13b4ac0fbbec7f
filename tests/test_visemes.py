import pytest

from photoavatar.visemes import VISEMES, UnknownVisemeError, parse_viseme_list


def test_default_list_round_trips():
    assert parse_viseme_list(",".join(VISEMES)) == VISEMES


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(UnknownVisemeError) as error:
        parse_viseme_list("Rest,AI,Blah")
    assert "Blah" in str(error.value) and "MBP" in str(error.value)


def test_rest_is_required_and_names_do_not_repeat():
    with pytest.raises(UnknownVisemeError, match="Rest"):
        parse_viseme_list("AI,E")
    with pytest.raises(UnknownVisemeError, match="repeats"):
        parse_viseme_list("Rest,AI,AI")
