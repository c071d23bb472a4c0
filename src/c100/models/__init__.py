"""The model zoo: ``create_model(name, num_classes=100)``, ``list_models()``, ``get_entry(name)``.

Importing this package imports every family file (one family per file), and each registers its
builders with ``c100.models.registry`` on import, as timm's ``timm.models`` does. The registry itself
imports no family, so the imports run one way: package -> families -> layers, registry.
Any timm model is ``timm/<name>``: the registry resolves it (``get_entry``) like a registered name.
"""
from c100.models.registry import (  # noqa: F401
    ModelEntry, create_model, get_entry, list_aliases, list_models, register_alias, register_model,
)

# Import order is listing-neutral (list_models sorts); the ResNet variants follow resnet.
from c100.models import seed  # noqa: F401,E402
from c100.models import resnet  # noqa: F401,E402
from c100.models import cifar_resnet  # noqa: F401,E402
from c100.models import preact_resnet  # noqa: F401,E402
from c100.models import resnext  # noqa: F401,E402
from c100.models import senet  # noqa: F401,E402
from c100.models import stochastic_depth  # noqa: F401,E402
from c100.models import wide_resnet  # noqa: F401,E402
from c100.models import vgg  # noqa: F401,E402
from c100.models import densenet  # noqa: F401,E402
from c100.models import mobilenet  # noqa: F401,E402
from c100.models import shufflenet  # noqa: F401,E402
from c100.models import squeezenet  # noqa: F401,E402
from c100.models import googlenet  # noqa: F401,E402
from c100.models import xception  # noqa: F401,E402
from c100.models import inception  # noqa: F401,E402
from c100.models import pyramidnet  # noqa: F401,E402
from c100.models import vit  # noqa: F401,E402
from c100.models import convmixer  # noqa: F401,E402
from c100.models import attention  # noqa: F401,E402
from c100.models import nasnet  # noqa: F401,E402
