"""Parse, sanitise and standardise SMILES with RDKit, one molecule at a time, saying what changed.

The steps, each reported by a change kind when it alters the molecule:

1. parse and sanitise (RDKit ``MolFromSmiles``). A SMILES that fails is retried once with narrow fixes
   (``fix_invalid``): an aromatic nitrogen missing its hydrogen (``c1ccnc1`` -> ``c1cc[nH]c1``,
   ``"kekulisation_fixed"``), a neutral four-valent nitrogen given its positive charge, or bonds to a metal
   atom that exceed its valence broken (``"valence_fixed"``, ``"metal_disconnected"``). Otherwise it is
   ``"invalid"`` with RDKit's reason. Sanitisation that rewrites charges itself (nitro written ``N(=O)=O``
   becomes ``[N+](=O)[O-]``) is ``"sanitisation_normalised"``;
2. molecules without any carbon atom (salts such as NaCl, cisplatin) are kept as parsed and flagged
   ``no_organic_fragment``; the steps below are skipped for them;
3. bonds to metals broken (``rdMolStandardize.MetalDisconnector``): ``"metal_disconnected"``;
4. the largest organic fragment kept (counter-ions, solvents and salts dropped): ``"salt_stripped"``;
5. functional groups normalised (``rdMolStandardize.Normalizer``: nitro, N-oxides, sulfoxides, ...):
   ``"normalised"``;
6. charges neutralised where a proton can be added or removed (``rdMolStandardize.Uncharger``):
   ``"neutralised"``;
7. molecules with more than ``max_heavy_atoms`` heavy atoms are ``"too_large"``; none at all is ``"invalid"``.

The result's ``canonical`` is RDKit's canonical isomeric SMILES of the standardised molecule.

Examples:
    >>> result = standardise_smiles("[Na+].[O-]C(=O)c1ccccc1")
    >>> result.canonical, result.changes
    ('O=C(O)c1ccccc1', ('salt_stripped', 'neutralised'))
    >>> standardise_smiles("C1CC").status
    'invalid'
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from medai.errors import InvalidInputError, require

STANDARDISER_VERSION = 2  # bump when the steps change, so cached standardisation results are not reused
STATUSES = ("ok", "empty", "invalid", "too_large")
CHANGE_KINDS = ("kekulisation_fixed", "valence_fixed", "sanitisation_normalised", "metal_disconnected",
                "salt_stripped", "normalised", "neutralised")
METALS = frozenset([3, 4, 11, 12, 13, 19, 20, *range(21, 32), 37, 38, *range(39, 51), 55, 56, *range(57, 85),
                    *range(87, 119)])
"""Atomic numbers treated as metals (alkali, alkaline earth, transition, lanthanide, actinide, post-transition)."""
_CHARGED_BRACKET = re.compile(r"\[[^\]]*[+-][^\]]*\]")
NORMALISABLE_ELEMENTS = frozenset([15, 16, 33, 34, 51, 52])  # P, S, As, Se, Sb, Te
"""RDKit's default normalisations match only charged atoms or these elements in a sanitised molecule, so other
molecules skip the (slow) normaliser; on all MoleculeNet sets (61,385 SMILES) this changes no result."""


@dataclass(frozen=True)
class StandardiseOptions:
    """Which standardisation steps run (all by default) and the size limit."""

    fix_invalid: bool = True  # retry failed SMILES with the narrow aromatic-[nH] / valence fixes
    disconnect_metals: bool = True  # break bonds to metal atoms
    largest_fragment: bool = True  # keep the largest organic fragment (strips salts and solvents)
    normalise: bool = True  # RDKit functional-group normalisation
    neutralise: bool = True  # neutralise charges where a proton can be added or removed
    max_heavy_atoms: int = 200  # larger molecules are reported as "too_large" and skipped

    def __post_init__(self):
        if not isinstance(self.max_heavy_atoms, int) or self.max_heavy_atoms < 1:
            raise InvalidInputError(f"The 'max_heavy_atoms' option must be an integer >= 1; "
                                    f"got {self.max_heavy_atoms!r}.")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class StandardisedMolecule:
    """One SMILES after standardisation.

    Attributes:
        canonical: canonical isomeric SMILES, or None when the molecule is skipped.
        mol: the standardised RDKit ``Mol``, or None when skipped.
        status: ``"ok"``, ``"empty"``, ``"invalid"`` or ``"too_large"``.
        changes: the change kinds applied, in order (see the module docstring).
        reason: why a molecule was skipped (RDKit's message for invalid ones).
        heavy_atoms: number of heavy atoms after standardisation (0 when invalid).
        organic: False when the input holds no carbon atom (kept as parsed, not standardised).
    """

    canonical: str | None
    mol: object | None
    status: str
    changes: tuple[str, ...] = ()
    reason: str = ""
    heavy_atoms: int = 0
    organic: bool = True


class Standardiser:
    """Holds the RDKit standardisation tools so that many SMILES share them; call it on one SMILES."""

    def __init__(self, options: StandardiseOptions | None = None):
        self.options = options or StandardiseOptions()
        self._chem = require("rdkit.Chem", extra="chem")
        tools = require("rdkit.Chem.MolStandardize.rdMolStandardize", extra="chem")
        self._rdbase = require("rdkit.rdBase", extra="chem")
        self._metal = tools.MetalDisconnector()
        self._fragment = tools.LargestFragmentChooser(preferOrganic=True)
        self._normaliser = tools.Normalizer()
        self._uncharger = tools.Uncharger()
        # substructure screens run in C++, far faster than looping over atoms in Python
        metals = ",".join(f"#{z}" for z in sorted(METALS))
        normalisable = ",".join(f"#{z}" for z in sorted(NORMALISABLE_ELEMENTS))
        self._carbon, self._metal_atom, self._charged, self._normalisable = (
            self._chem.MolFromSmarts(q) for q in ("[#6]", f"[{metals}]", "[!+0]", f"[!+0,{normalisable}]"))

    def __call__(self, smiles: str | None) -> StandardisedMolecule:
        if smiles is None or not str(smiles).strip():
            return StandardisedMolecule(None, None, "empty", reason="no SMILES in this row")
        with self._rdbase.BlockLogs():  # RDKit would print every parse error to stderr
            return self._standardise(str(smiles).strip())

    def many(self, smiles: Sequence[str | None]) -> list[StandardisedMolecule]:
        """Standardise a list of SMILES (None or empty entries give ``status="empty"``)."""
        return [self(text) for text in smiles]

    def _standardise(self, smiles: str) -> StandardisedMolecule:
        Chem, options = self._chem, self.options
        mol, changes = Chem.MolFromSmiles(smiles), []
        if mol is None:
            mol, reason, changes = self._repair(smiles)
            if mol is None:
                return StandardisedMolecule(None, None, "invalid", reason=reason)
        elif mol.HasSubstructMatch(self._charged) and (len(mol.GetSubstructMatches(self._charged))
                                                        > len(_CHARGED_BRACKET.findall(smiles))):
            changes.append("sanitisation_normalised")
        organic = mol.HasSubstructMatch(self._carbon)
        if organic:
            mol = self._clean(mol, changes)
        heavy = mol.GetNumHeavyAtoms()
        if heavy == 0:
            return StandardisedMolecule(None, None, "invalid", reason="the molecule has no heavy atoms")
        if heavy > options.max_heavy_atoms:
            return StandardisedMolecule(None, None, "too_large", tuple(changes), heavy_atoms=heavy,
                                        reason=f"{heavy} heavy atoms; the limit is {options.max_heavy_atoms}")
        canonical = Chem.MolToSmiles(mol)
        if changes:  # a fresh parse drops stale valence, hybridisation and ring data left by the edits
            mol = Chem.MolFromSmiles(canonical)
            if mol is None:
                return StandardisedMolecule(None, None, "invalid", tuple(changes), reason=f"standardisation gave "
                                            f"{canonical!r}, which RDKit cannot parse back")
        return StandardisedMolecule(canonical, mol, "ok", tuple(changes), heavy_atoms=heavy, organic=organic)

    def _clean(self, mol, changes: list):
        options = self.options
        if options.disconnect_metals and mol.HasSubstructMatch(self._metal_atom):
            bonds = mol.GetNumBonds()
            mol = self._metal.Disconnect(mol)
            if mol.GetNumBonds() != bonds:
                changes.append("metal_disconnected")
        if options.largest_fragment and len(self._chem.GetMolFrags(mol)) > 1:
            mol = self._fragment.choose(mol)
            changes.append("salt_stripped")
        if options.normalise and mol.HasSubstructMatch(self._normalisable):
            before = _charge_state(mol)
            mol = self._normaliser.normalize(mol)
            if _charge_state(mol) != before:
                changes.append("normalised")
        if options.neutralise and mol.HasSubstructMatch(self._charged):
            before = _charge_state(mol)
            neutral = self._uncharger.uncharge(mol)
            # the uncharger can leave an impossible aromatic ring (ferrocene's [cH-] -> c1cccc1): keep the charge
            if _charge_state(neutral) != before and self._chem.MolFromSmiles(self._chem.MolToSmiles(neutral)):
                mol = neutral
                changes.append("neutralised")
        return mol

    def _repair(self, smiles: str):
        """Parse without sanitising, name the problem, and try the narrow fixes: (mol or None, reason, changes)."""
        Chem = self._chem
        raw = Chem.MolFromSmiles(smiles, sanitize=False)
        if raw is None:
            return None, "SMILES syntax error (unbalanced ring bond, bracket or unknown element)", []
        problems = list(Chem.DetectChemistryProblems(raw))
        reason = "; ".join(problem.Message() for problem in problems[:3]) or "RDKit could not sanitise it"
        if not self.options.fix_invalid:
            return None, reason, []
        changes: list[str] = []
        candidate = self._fix_valence(raw, problems, changes)
        mol = _sanitised(Chem, candidate)
        if mol is None:
            mol = self._fix_aromatic_nitrogen(candidate)
            if mol is None:
                return None, reason, []
            changes.append("kekulisation_fixed")
        return Chem.RemoveHs(mol), reason, changes

    def _fix_valence(self, raw, problems, changes: list):
        Chem = self._chem
        mol = Chem.RWMol(raw)
        bad = [mol.GetAtomWithIdx(p.GetAtomIdx()) for p in problems if p.GetType() == "AtomValenceException"]
        nitrogens = [atom for atom in bad if atom.GetAtomicNum() == 7 and atom.GetFormalCharge() == 0]
        for atom in nitrogens:  # R4N written without its charge
            atom.SetFormalCharge(1)
        if nitrogens:
            changes.append("valence_fixed")
        if any(atom.GetAtomicNum() in METALS for atom in bad):
            mol.UpdatePropertyCache(strict=False)
            mol = Chem.RWMol(self._metal.Disconnect(mol))
            changes.extend(["metal_disconnected"] + ([] if nitrogens else ["valence_fixed"]))
        return mol

    def _fix_aromatic_nitrogen(self, raw):
        """Give one aromatic nitrogen without hydrogens an [nH] until kekulisation succeeds (pyrrole-type N)."""
        candidates = [atom.GetIdx() for atom in raw.GetAtoms() if atom.GetIsAromatic() and atom.GetAtomicNum() == 7
                      and atom.GetFormalCharge() == 0 and atom.GetNumExplicitHs() == 0 and atom.GetDegree() == 2]
        for index in candidates[:8]:
            trial = self._chem.RWMol(raw)
            trial.GetAtomWithIdx(index).SetNumExplicitHs(1)
            mol = _sanitised(self._chem, trial)
            if mol is not None:
                return mol
        return None


def standardise_smiles(smiles: str | None, options: StandardiseOptions | None = None) -> StandardisedMolecule:
    """Standardise one SMILES (see the module docstring); for many, build one :class:`Standardiser`."""
    return Standardiser(options)(smiles)


def _sanitised(Chem, mol):
    """A sanitised copy of ``mol``, or None when RDKit cannot sanitise it."""
    mol = Chem.Mol(mol)
    try:
        Chem.SanitizeMol(mol)
    except (ValueError, RuntimeError):
        return None
    return mol


def _charge_state(mol) -> tuple:
    """Order-free summary of charges and hydrogens: what normalisation and neutralisation change."""
    return tuple(sorted((a.GetAtomicNum(), a.GetFormalCharge(), a.GetTotalNumHs()) for a in mol.GetAtoms()))
