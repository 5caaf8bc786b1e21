"""Every SerialEM command the gateway uses: its arguments, what it reports, and where that is said.

This table is the contract between :mod:`scope_gateway.serialem_driver` and SerialEM. The fake
(:mod:`scope_gateway.fake_serialem`) parses every call's arguments from it, the conformance
tests check one row each, and the README's command list is this table. Sources, read at
``mastcu/SerialEM`` commit ``dfff4de7`` and ``mastcu/PythonModule`` commit ``ddc325e``:

- ``MML`` — ``MacroMasterList.h``: the argument keys of each command in the Python module.
  ``D``/``I``/``S`` are a required float, int, str; ``d``/``i``/``s`` optional ones; once one
  optional key appears every later argument is optional (``SerialEMModule.cpp`` 597-620).
  Floats take ints; ints refuse floats; strings refuse numbers (``PyArg_ParseTuple``).
- ``HTM`` — ``hlp/html/script_commands.htm``, the line of the command's row.
- ``MC`` — ``MacroCommands.cpp``, the line of the function that runs it (what it reports).
- ``SEMM`` — ``SerialEMModule.cpp``, for the module's own functions.

What a command reports (``reports``): ``""`` nothing (``None``), else one letter per value,
``f`` a float and ``s`` a str. One value comes back bare (a float or a str), several as a tuple
(``SerialEMModule.cpp`` 774-800). A row lists every shape the sources allow.

>>> COMMANDS["ReportImageShift"].keys, COMMANDS["ReportImageShift"].reports
('', ('ff', 'ffffff'))
>>> COMMANDS["MoveStageTo"].required
2
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

__all__ = ["COMMANDS", "SEMCommand", "required_count"]


def required_count(keys: str) -> int:
    """How many leading arguments are required (upper case until the first lower-case key)."""
    for i, key in enumerate(keys):
        if key.islower():
            return i
    return len(keys)


@dataclass(frozen=True)
class SEMCommand:
    """One SerialEM command as the Python module exposes it.

    Attributes:
        name: the module function (SerialEM's mixed-case command name).
        keys: argument keys from ``MacroMasterList.h`` (see the module docstring).
        reports: the shapes of what it returns (``""`` = None).
        source: where the keys, the help text and the implementation are.
        probe: valid arguments for a call in the conformance scenario.
        meaning: what the gateway relies on (units, indices, errors).
    """

    name: str
    keys: str
    reports: tuple[str, ...]
    source: str
    probe: tuple[Any, ...]
    meaning: str

    @property
    def required(self) -> int:
        return required_count(self.keys)


def _src(mml: int, htm: int, mc: int) -> str:
    return f"MML:{mml} HTM:{htm} MC:{mc}"


_ROWS: Final[tuple[SEMCommand, ...]] = (
    # ---- the module's own functions ----------------------------------------------------------
    SEMCommand("ConnectToSEM", "is", ("",), "SEMM:369; PySEMSocket.cpp:91-145; about_scripts.htm:1214",
               (48888, "127.0.0.1"),
               "port, IP; only the first call of a process sets them, later calls reconnect to "
               "the same address; a failed connection is SEMmoduleError"),
    SEMCommand("bufferImage", "S", ("image",), "SEMM:121-160, 528; script_commands.htm:1072",
               ("A",),
               "a type whose instances expose the buffer as a 2-D array (numpy.asarray); a "
               "failure is raised inside __init__ and surfaces as SystemError caused by "
               "SEMmoduleError or SEMexited"),
    # ---- script control and housekeeping -----------------------------------------------------
    SEMCommand("Exit", "ds", ("",), _src(54, 373, 698), (1,),
               "Exit(1) ends the script quietly; Exit() and Exit(0) raise SEMexited('Normal "
               "exit') per MC:702-707 (the help at about_scripts.htm:1227 says Exit() is quiet)"),
    SEMCommand("Echo", "s", ("",), _src(395, 787, 8805), ("gridpilot",), "text to the log"),
    SEMCommand("SetDirectory", "S", ("",), _src(215, 2518, 4626), ("C:/gridpilot",),
               "SerialEM's current folder (on its computer)"),
    SEMCommand("AllowFileOverwrite", "I", ("",), _src(214, 2573, 4619), (1,),
               "reset when a new script starts (after STOP or Exit)"),
    SEMCommand("NoMessageBoxOnError", "i", ("",), _src(89, 672, 1404), (1,),
               "no modal dialog on errors; reset when a new script starts"),
    SEMCommand("Delay", "Ds", ("",), _src(267, 595, 5597), (0.5,), "seconds (or a unit)"),
    SEMCommand("ReportClock", "", ("f",), _src(323, 6459, 6691), (),
               "seconds since ResetClock or the script's start"),
    # ---- autoloader and vacuum ---------------------------------------------------------------
    SEMCommand("ReportSlotStatus", "I", ("f", "fs", "fffffs"), _src(451, 4151, 10135), (2,),
               "Thermo/FEI: slot from 1; 1 occupied, 0 empty (also when its grid is on the "
               "stage), -1 unknown, < -1 error, then a name. JEOL: inventory index from 1; -1 "
               "past the end, else (id, station 0/1 magazine/2 storage/3 stage, slot, type, "
               "angle, name); needs LongOperation('In') first"),
    SEMCommand("ReportLoadedSlot", "", ("ff",), _src(881, 4183, 10217), (),
               "Thermo/FEI (UTAPI): (slot from 1 or 0 for none, 0); JEOL: (inventory index "
               "from 0, id) or (-1, -1)"),
    SEMCommand("LoadCartridge", "I", ("",), _src(452, 4137, 10201), (2,),
               "Thermo/FEI: slot from 1; JEOL: inventory index from 1 (error if already on the "
               "stage, EMscope.cpp:7644-7687); a long operation"),
    SEMCommand("UnloadCartridge", "", ("",), _src(453, 4145, 10201), (),
               "back to the cassette; JEOL needs the inventory (EMscope.cpp:7690-7716)"),
    SEMCommand("LongOperation", "Sssssssssssssssssss", ("ff",), _src(584, 4279, 14592), ("In",),
               "'In' takes the cassette inventory (JEOL: needed before any loader command); "
               "reports a return code and 0"),
    SEMCommand("SetColumnOrGunValve", "I", ("",), _src(501, 3843, 11538), (0,),
               "1 open, 0 closed"),
    SEMCommand("AreDewarsFilling", "", ("f",), _src(456, 4192, 10289), (),
               "0 or 1 (JEOL: 1 stage tank + 2 transfer tank)"),
    # ---- optics ------------------------------------------------------------------------------
    SEMCommand("SetLowDoseMode", "I", ("f",), _src(573, 4685, 14363), (1,),
               "returns the previous state"),
    SEMCommand("GoToLowDoseArea", "S", ("",), _src(571, 4679, 14332), ("V",),
               "V, F, T, R or S"),
    SEMCommand("GoToImagingState", "S", ("f",), _src(673, 5572, 12860), ("Atlas",),
               "a failure is NOT an error: reports 0, or 1 no such name, 2 ambiguous, 3 out of "
               "range, 4-6 other"),
    SEMCommand("SetMag", "Di", ("",), _src(258, 3414, 5431), (2250.0,),
               "a magnification; error unless it is near an existing one"),
    SEMCommand("SetSpotSize", "I", ("",), _src(265, 3480, 5553), (5,), "spot size"),
    SEMCommand("SetPercentC2", "D", ("",), _src(442, 3488, 9998), (50.0,), "C2/C3 %"),
    SEMCommand("RefineZLP", "diii", ("", "f"), _src(463, 5099, 10490), (0, 0, 0, 1),
               "#I minutes since the last run; with #F non-zero a failure reports 1 instead "
               "of an error (0 on success)"),
    SEMCommand("ReportMag", "", ("fff",), _src(343, 3433, 7026), (),
               "(magnification, 1 if low mag, 0 TEM / 1 EFTEM / 2 STEM)"),
    # ---- stage -------------------------------------------------------------------------------
    SEMCommand("MoveStageTo", "DDd", ("",), _src(332, 3264, 6799), (10.0, -5.0), "µm"),
    SEMCommand("ReportStageXYZ", "", ("fff",), _src(339, 3297, 6982), (), "µm"),
    SEMCommand("TiltTo", "Didd", ("",), _src(111, 3226, 1949), (0.0,), "degrees"),
    SEMCommand("ReportTiltAngle", "", ("f",), _src(340, 3256, 6993), (), "degrees"),
    SEMCommand("Eucentricity", "ii", ("",), _src(426, 5053, 9582), (1,),
               "1 rough, 2 refine (default), 3 both, +4 realign; < 0 by focus; others error"),
    # ---- focus and drift ---------------------------------------------------------------------
    SEMCommand("SetTargetDefocus", "D", ("",), _src(252, 4521, 5335), (-2.0,), "µm"),
    SEMCommand("ReportTargetDefocus", "", ("f",), _src(286, 4580, 5977), (), "µm"),
    SEMCommand("SetDefocus", "D", ("",), _src(246, 3339, 5269), (-1.0,), "µm"),
    SEMCommand("ChangeFocus", "D", ("",), _src(245, 3335, 5260), (-0.5,), "µm, relative"),
    SEMCommand("ReportDefocus", "", ("f",), _src(346, 3362, 7075), (), "µm"),
    SEMCommand("AutoFocus", "ii", ("",), _src(163, 4507, 3213), (),
               "1 (default) focus, -1 measure only"),
    SEMCommand("ReportAutoFocus", "", ("ff",), _src(285, 4573, 5957), (),
               "(defocus µm, 0 ok / -1 failed / abort code)"),
    SEMCommand("DriftWaitTask", "dsddisiii", ("",), _src(431, 5173, 9814),
               (2.0, "A", 30.0, 5.0, -1, "F"),
               "rate, unit nm, A or 0, max s, interval s, 1 error on timeout / -1 no error / 0 "
               "dialog (default: error, ParticleTasks.cpp:53), type T, F, A or 0; reports nothing"),
    SEMCommand("GetWaitTaskDrift", "", ("ff",), _src(433, 5186, 9874), (),
               "(last drift nm/s, 0 ok or the failure: 1 too long, 2 align, 3 focus, 4 dim, "
               "5 no info, 6 stopped; ParticleTasks.h:9)"),
    # ---- image shift -------------------------------------------------------------------------
    SEMCommand("ImageShiftByMicrons", "DDdi", ("f",), _src(276, 3721, 5811), (0.5, 0.25),
               "µm on the specimen; reports 1 and does NOTHING when over the limit "
               "(MacroProcessor.cpp:4930-4942), else 0"),
    SEMCommand("SetImageShift", "DDdi", ("f",), _src(293, 3692, 6115), (0.0, 0.0),
               "image-shift units; 1 and nothing done when over the limit"),
    SEMCommand("ResetImageShift", "id", ("",), _src(424, 5039, 9538), (),
               "image shift to zero, the stage moves to compensate"),
    SEMCommand("ReportImageShift", "", ("ff", "ffffff"), _src(295, 3735, 6164), (),
               "(IS units x, y[, camera unbinned pixels x, y, stage µm x, y to reset]); NOT µm"),
    SEMCommand("ReportSpecimenShift", "", ("ff", ""), _src(301, 3744, 6332), (),
               "µm on the specimen (the ImageShiftByMicrons frame); nothing when uncalibrated"),
    # ---- camera and frames -------------------------------------------------------------------
    SEMCommand("SetExposure", "SDd", ("",), _src(465, 1293, 10602), ("R", 1.0), "set, s"),
    SEMCommand("SetFrameTime", "SD", ("f",), _src(472, 1353, 10833), ("R", 0.25),
               "reports the frame time as constrained"),
    SEMCommand("SetDoseFracParams", "SIiiii", ("",), _src(475, 1396, 10943), ("R", 0, 0),
               "#D dose fractionation (K2/K3 only), #S save frames (all cameras; DE: flags 16 "
               "summed, 4 final, 32 single), #A align, #M where, #C sums"),
    SEMCommand("SetFolderForFrames", "S", ("",), _src(492, 1617, 11303), ("C:/frames",),
               "folder on SerialEM's computer"),
    SEMCommand("ReportLastFrameFile", "", ("sss",), _src(209, 2876, 4301), (),
               "(full path, folder, file name); error when no frames were saved"),
    # ---- acquisition -------------------------------------------------------------------------
    SEMCommand("Search", "", ("",), _src(125, 1249, 2048), (), "into buffer A"),
    SEMCommand("View", "", ("",), _src(115, 1225, 2008), (), "into buffer A"),
    SEMCommand("Preview", "", ("",), _src(123, 1241, 2040), (), "into buffer A"),
    SEMCommand("Record", "", ("",), _src(121, 1237, 2032), (), "into buffer A"),
    SEMCommand("MultipleRecords", "iiddiiiiiiid", ("f",), _src(155, 4861, 2771), (2, 0, 1.0),
               "shots around the centre, centre shot, radius µm, ...; -9 or missing = the "
               "dialog's value; reports the number of Records"),
    # ---- montage and files -------------------------------------------------------------------
    SEMCommand("OpenNewMontage", "IIS", ("",), _src(185, 2939, 3680), (2, 1, "atlas.mrc"),
               "pieces in X and Y, file"),
    SEMCommand("ParamSetToUseForMontage", "Ii", ("",), _src(712, 2972, 14259), (3,),
               "1 Mont-map, 2 View, 3 Search in low dose (negative: off)"),
    SEMCommand("SetMontageParams", "Iiiiiidd", ("",), _src(567, 2950, 14166), (1,),
               "#S 1 stage montage, then overlaps, sizes, ...; -1 unchanged"),
    SEMCommand("ReportNumMontagePieces", "", ("f",), _src(188, 3043, 3881), (),
               "pieces of the open montage, or 1"),
    SEMCommand("Montage", "", ("",), _src(126, 1245, 2056),
               (), "no arguments from Python; afterwards A holds a piece and B the overview "
               "(EMmontageController.cpp:3085 'Move the mini data into buffer B')"),
    SEMCommand("ReadFile", "Is", ("",), _src(179, 2804, 3429), (0, "B"),
               "section from 0; on a montage it reads the whole section (overview in B)"),
    SEMCommand("ReadMontagePiece", "IIIs", ("",), _src(721, 2821, 3429), (1, 1, 0, "C"),
               "piece X, Y from 1, section Z from 0, buffer; Y counts from the bottom "
               "row (IMOD piece coordinates are Y-up; inferred, not stated in the help)"),
    SEMCommand("CloseFile", "s", ("",), _src(206, 2827, 4270), (), "the current file"),
    SEMCommand("SaveToOtherFile", "SSSS", ("",), _src(182, 2754, 3508),
               ("A", "MRC", "NONE", "copy.mrc"), "buffer, type, compression, file"),
    # ---- navigator, buffers, alignment -------------------------------------------------------
    SEMCommand("OpenNavigator", "s", ("",), _src(535, 5291, 13084), (),
               "opens it if closed; with a name it must not be open"),
    SEMCommand("BufImageToStageMatrix", "SI", ("ffffff",), _src(734, 2232, 6621), ("B", 1),
               "(a11, a12, a21, a22, dx, dy): stage = a·(x, y) + d with image x, y "
               "continuous, Y down, (0, 0) the top-left corner, the centre at (w/2, h/2) "
               "(NavHelper.cpp:3121-3148); needs the Navigator (ABORT_NONAV)"),
    SEMCommand("ImageProperties", "s", ("ffffff",), _src(388, 2099, 8442), ("A",),
               "(width, height, binning, exposure s, pixel nm, parameter set or -1)"),
    SEMCommand("ImageConditions", "S", ("ff",), _src(649, 2123, 8511), ("A",),
               "(dose e/Å², magnification) of the image"),
    SEMCommand("AlignTo", "Siiiidddi", ("f",), _src(159, 4397, 3117), ("B",),
               "aligns A to buf and shifts the image unless #N is 1; reports 0 or -1 (limited)"),
    SEMCommand("ReportAlignShift", "", ("ffffff",), _src(305, 4476, 6428), (),
               "(unbinned px x, y (Y up), nm along IS axes x, y, nm on the specimen x, y)"),
)

#: Command name → its row.
COMMANDS: Final[dict[str, SEMCommand]] = {row.name: row for row in _ROWS}
