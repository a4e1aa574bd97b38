"""Name, street and postcode vocabularies for synthetic identifiers (invented or very common).

Frequencies follow a Zipf law over each list, and surnames get a long tail of generated
syllable names, so that common names collide as in real registers while most people still
carry rare surnames. No list is taken from a real register.
"""

from __future__ import annotations

from types import MappingProxyType

import numpy as np
import numpy.typing as npt


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


FEMALE_NAMES = _words(
    "olivia emma amelia ava sophia isla grace mia ella lily emily isabella poppy jessica evie "
    "charlotte sophie chloe freya ruby daisy alice hannah lucy scarlett matilda holly phoebe "
    "millie florence sienna layla eva rosie elsie imogen erin maya willow esme harriet zara "
    "molly katie abigail elizabeth victoria rebecca sarah laura rachel jennifer catherine "
    "margaret susan patricia deborah helen karen julie amanda nicola joanne claire louise "
    "samantha natalie kimberly stephanie michelle angela melissa christine megan heather "
    "danielle tiffany andrea jacqueline caroline theresa alexandra josephine beatrice eleanor "
    "penelope madison aurora violet hazel stella naomi leah maria ana fatima aisha priya mei "
    "yuki ingrid astrid siobhan niamh aoife caitlin bridget dorothy gwen nora iris ada edith"
)
MALE_NAMES = _words(
    "oliver george harry jack noah charlie jacob alfie freddie oscar leo archie henry joshua "
    "james william thomas ethan isaac alexander joseph edward samuel max daniel arthur lucas "
    "mohammed logan theo harrison benjamin mason sebastian finley adam dylan zachary riley "
    "teddy michael robert david richard john christopher matthew anthony mark steven paul "
    "andrew kenneth kevin brian timothy ronald jason jeffrey ryan gary nicholas eric stephen "
    "jonathan larry justin scott brandon frank gregory raymond patrick peter nathan douglas "
    "walter kyle carl harold jeremy keith roger gerald christian terry sean gavin ahmed omar "
    "ravi arjun wei hiroshi lars sven ciaran declan eoin cormac rhys owen gareth ieuan callum "
    "hamish angus fraser"
)

# Nicknames and short forms a clerk may type instead of the registered given name.
NICKNAMES: MappingProxyType[str, tuple[str, ...]] = MappingProxyType(
    {
        "william": ("bill", "will", "billy", "liam"),
        "robert": ("bob", "rob", "bobby", "robbie"),
        "richard": ("rick", "dick", "rich", "ricky"),
        "james": ("jim", "jimmy", "jamie"),
        "john": ("jack", "johnny"),
        "michael": ("mike", "mick", "mikey"),
        "thomas": ("tom", "tommy"),
        "christopher": ("chris", "kit"),
        "matthew": ("matt",),
        "anthony": ("tony", "ant"),
        "joseph": ("joe", "joey"),
        "daniel": ("dan", "danny"),
        "samuel": ("sam", "sammy"),
        "benjamin": ("ben", "benny"),
        "alexander": ("alex", "sandy", "xander"),
        "edward": ("ed", "eddie", "ted", "ned"),
        "nicholas": ("nick", "nicky"),
        "jonathan": ("jon", "jonny"),
        "timothy": ("tim", "timmy"),
        "kenneth": ("ken", "kenny"),
        "stephen": ("steve", "stevie"),
        "steven": ("steve", "stevie"),
        "andrew": ("andy", "drew"),
        "gregory": ("greg",),
        "patrick": ("pat", "paddy"),
        "peter": ("pete",),
        "raymond": ("ray",),
        "douglas": ("doug",),
        "gerald": ("gerry",),
        "harold": ("harry", "hal"),
        "henry": ("harry", "hank"),
        "frederick": ("fred", "freddie"),
        "zachary": ("zach", "zack"),
        "sebastian": ("seb",),
        "theodore": ("theo", "ted"),
        "elizabeth": ("liz", "beth", "lizzie", "betty", "eliza"),
        "margaret": ("maggie", "peggy", "meg", "marge"),
        "catherine": ("cathy", "kate", "katie", "cat"),
        "jennifer": ("jen", "jenny"),
        "rebecca": ("becky", "becca"),
        "victoria": ("vicky", "tori"),
        "patricia": ("pat", "trish", "patty"),
        "deborah": ("debbie", "deb"),
        "samantha": ("sam", "sammy"),
        "stephanie": ("steph",),
        "kimberly": ("kim",),
        "jacqueline": ("jackie",),
        "christine": ("chris", "tina"),
        "alexandra": ("alex", "sasha", "lexi"),
        "josephine": ("jo", "josie"),
        "eleanor": ("ellie", "nell"),
        "penelope": ("penny",),
        "abigail": ("abby",),
        "isabella": ("bella", "izzy"),
        "dorothy": ("dot", "dottie"),
        "susan": ("sue", "susie"),
        "nicola": ("nicky",),
        "amanda": ("mandy",),
        "theresa": ("tess", "terri"),
        "charlotte": ("lottie", "charlie"),
        "matilda": ("tilly",),
        "florence": ("flo",),
    }
)

SURNAMES = _words(
    "smith jones williams taylor brown davies evans wilson thomas johnson roberts robinson "
    "thompson wright walker white edwards hughes green hall lewis harris clarke patel jackson "
    "wood turner martin cooper hill ward morris moore clark lee king baker harrison morgan "
    "allen james scott phillips watson davis parker price bennett young griffiths mitchell "
    "kelly cook carter richardson bailey collins bell shaw murphy miller cox richards khan "
    "marshall anderson simpson ellis adams singh begum wilkinson foster chapman powell webb "
    "rogers gray mason ali hunt hussain campbell matthews owen palmer holmes mills barnes "
    "knight lloyd butler russell barker fisher stevens jenkins murray dixon harvey graham "
    "pearson ahmed fletcher walsh kaur gibson howard andrews stewart elliott reynolds "
    "saunders payne fox ford pearce day brooks west lawrence cole atkinson bradley spencer "
    "gill dawson ball burton obrien watts rose booth perry ryan grant wells armstrong francis "
    "rees hayes hart hudson newman barrett webster hunter gregory carr lowe page marsh riley "
    "dunn woods parsons berry stone reid holland hawkins harding porter robertson newton "
    "oconnor kennedy mcdonald nguyen chen wang li zhang kowalski novak muller schmidt garcia "
    "rodriguez fernandez lopez martinez silva"
)

_ONSETS = "b br c ch cl d dr f g gr h j k l m n p pr r s sh st t th tr v w wh y z".split()  # noqa: SIM905
_VOWELS = "a e i o u ai ea ee oo ou ay".split()  # noqa: SIM905
_CODAS = "n r l s t ck ng rd ld nt st m ll ff ss th rk".split()  # noqa: SIM905
_ENDINGS = "son ton ley field wood ford man well by worth ham more land er".split()  # noqa: SIM905

STREET_NAMES = _words(
    "high station church park victoria green manor mill school kings queens north south west "
    "east new grange chapel albert york windsor richmond oak elm ash beech cedar willow birch "
    "maple holly hawthorn meadow orchard river bridge castle abbey priory market garden "
    "springfield highfield woodland hillside valley brook lake forest heath moor cliff "
    "harbour quay marine shore ridge stanley alexandra princes cambridge oxford london "
    "carlton belmont fairview glebe rectory vicarage"
)
STREET_TYPES = ("road", "street", "lane", "avenue", "close", "drive", "way", "crescent", "court")

# Postcode areas (one or two letters), each with its own districts; the format follows the
# UK shape "AB12 3CD" so that area, district and sector can be compared and coarsened.
POSTCODE_AREAS = _words(
    "AB AL B BA BD BN BR BS CB CF CH CM CO CV DE DN EX G GL GU HU LE LS M NE NG NR OX PE PL "
    "PO RG S SE SO SR ST SW TN WR YO"
)
_UNIT_LETTERS = np.array(list("ABDEFGHJLNPQRSTUWXYZ"))


def zipf(n: int, s: float = 1.0) -> npt.NDArray[np.float64]:
    """Probabilities of ranks 1..n proportional to rank**-s."""
    raw = 1.0 / np.arange(1, n + 1, dtype=np.float64) ** s
    weights: npt.NDArray[np.float64] = raw / raw.sum()
    return weights


def generated_surnames(rng: np.random.Generator, n: int) -> list[str]:
    """``n`` distinct invented surnames built from syllables (the long tail of rare names)."""
    made: set[str] = set(SURNAMES)
    out: list[str] = []
    while len(out) < n:
        k = max(n - len(out), 64) * 2
        parts = (
            np.array(_ONSETS)[rng.integers(0, len(_ONSETS), k)].astype(object)
            + np.array(_VOWELS)[rng.integers(0, len(_VOWELS), k)].astype(object)
            + np.array(_CODAS)[rng.integers(0, len(_CODAS), k)].astype(object)
            + np.array(_ENDINGS)[rng.integers(0, len(_ENDINGS), k)].astype(object)
        )
        for name in parts:
            if name not in made:
                made.add(name)
                out.append(str(name))
                if len(out) == n:
                    break
    return out


def random_postcodes(
    rng: np.random.Generator, n: int, areas: npt.NDArray[np.int64] | None = None
) -> npt.NDArray[np.object_]:
    """``n`` postcodes "AB12 3CD"; ``areas`` (indices into POSTCODE_AREAS) fixes the area."""
    if areas is None:
        areas = rng.choice(len(POSTCODE_AREAS), n, p=zipf(len(POSTCODE_AREAS), 0.6))
    area = np.array(POSTCODE_AREAS, dtype=object)[areas]
    district = rng.integers(1, 30, n).astype(str).astype(object)
    sector = rng.integers(0, 10, n).astype(str).astype(object)
    letters = _UNIT_LETTERS[rng.integers(0, len(_UNIT_LETTERS), (n, 2))]
    unit = np.char.add(letters[:, 0], letters[:, 1]).astype(object)
    postcodes: npt.NDArray[np.object_] = area + district + " " + sector + unit
    return postcodes


def random_streets(rng: np.random.Generator, n: int) -> npt.NDArray[np.object_]:
    """``n`` address lines "12 oak road" (house number, street name, street type)."""
    number = rng.integers(1, 200, n).astype(str).astype(object)
    name = np.array(STREET_NAMES, dtype=object)[
        rng.choice(len(STREET_NAMES), n, p=zipf(len(STREET_NAMES), 0.5))
    ]
    kind = np.array(STREET_TYPES, dtype=object)[rng.integers(0, len(STREET_TYPES), n)]
    streets: npt.NDArray[np.object_] = number + " " + name + " " + kind
    return streets
