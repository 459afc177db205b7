from transfers.cli import main
from transfers.logs import log_to_stderr

log_to_stderr()
main()
