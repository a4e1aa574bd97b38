# Prints "current" when both schemas are at their newest revision, else "behind".
from enclave.control import db as control
from enclave.settings import Settings
from output_checker.queue import db as queue

engine = control.make_engine(Settings.load().database_url)
current = control.current_revision(engine) == control.head_revision() and (
    queue.current_revision(engine) == queue.head_revision()
)
print("current" if current else "behind")
