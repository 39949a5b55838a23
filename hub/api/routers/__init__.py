"""API router modules. Each module here exports ``router`` (an ``APIRouter`` whose routes all
declare an ``authorize(...)`` dependency); ``create_app`` includes every module of this package."""
