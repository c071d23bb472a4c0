"""Old name of c100.run_folder, kept only while c100.engine and c100.shipped still import it from here
(issue 16: the run-folder format has one home, c100/run_folder.py). Remove once nothing imports it."""
from c100.run_folder import *  # noqa: F401,F403
from c100.run_folder import EXECUTION_FIELDS as RESUME_MAY_DIFFER  # noqa: F401  the list's old name
