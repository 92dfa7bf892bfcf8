# One image for both servers; docker-compose.yml picks which one runs.
FROM python:3.11-slim
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY common.py sync_server.py async_server.py ./
COPY templates templates
