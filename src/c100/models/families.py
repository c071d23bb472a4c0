"""Imports every model family file so that its builders register. One family per file."""
from c100.models import seed  # noqa: F401
from c100.models import resnet  # noqa: F401
from c100.models import preact_resnet  # noqa: F401
from c100.models import resnext  # noqa: F401
from c100.models import senet  # noqa: F401
from c100.models import wide_resnet  # noqa: F401
from c100.models import vgg  # noqa: F401
from c100.models import densenet  # noqa: F401
from c100.models import mobilenet  # noqa: F401
from c100.models import shufflenet  # noqa: F401
from c100.models import squeezenet  # noqa: F401
from c100.models import googlenet  # noqa: F401
from c100.models import pyramidnet  # noqa: F401
from c100.models import vit  # noqa: F401
