"""Published data-centre locations (latitude, longitude) of the clouds CockroachDB
Cloud runs on: coordinates only.

Which GCP regions offer Cloud Functions or Cloud Scheduler is asked of Google at
deploy time, never kept here. Coordinates are the cities the providers name for
each region, to a city's precision: enough to choose the nearest region, not to
measure latency. A region missing here is an error naming it (deploy/region.py),
so a new region is added here when it first appears in a list Google answers.
"""

GCP = {
    "us-central1": (41.26, -95.86),  # Council Bluffs, Iowa
    "us-east1": (33.20, -80.01),  # Moncks Corner, South Carolina
    "us-east4": (39.04, -77.49),  # Ashburn, Virginia
    "us-east5": (39.96, -83.00),  # Columbus, Ohio
    "us-south1": (32.78, -96.80),  # Dallas, Texas
    "us-west1": (45.60, -121.18),  # The Dalles, Oregon
    "us-west2": (34.05, -118.24),  # Los Angeles
    "us-west3": (40.76, -111.89),  # Salt Lake City
    "us-west4": (36.17, -115.14),  # Las Vegas
    "northamerica-northeast1": (45.50, -73.57),  # Montréal
    "northamerica-northeast2": (43.65, -79.38),  # Toronto
    "northamerica-south1": (20.59, -100.39),  # Querétaro
    "southamerica-east1": (-23.55, -46.63),  # São Paulo
    "southamerica-west1": (-33.45, -70.67),  # Santiago
    "europe-west1": (50.45, 3.82),  # St. Ghislain, Belgium
    "europe-west2": (51.51, -0.13),  # London
    "europe-west3": (50.11, 8.68),  # Frankfurt
    "europe-west4": (53.44, 6.83),  # Eemshaven, Netherlands
    "europe-west6": (47.38, 8.54),  # Zurich
    "europe-west8": (45.46, 9.19),  # Milan
    "europe-west9": (48.86, 2.35),  # Paris
    "europe-west10": (52.52, 13.40),  # Berlin
    "europe-west12": (45.07, 7.69),  # Turin
    "europe-north1": (60.57, 27.20),  # Hamina, Finland
    "europe-north2": (59.33, 18.07),  # Stockholm
    "europe-central2": (52.23, 21.01),  # Warsaw
    "europe-southwest1": (40.42, -3.70),  # Madrid
    "asia-east1": (24.05, 120.52),  # Changhua County, Taiwan
    "asia-east2": (22.32, 114.17),  # Hong Kong
    "asia-northeast1": (35.68, 139.69),  # Tokyo
    "asia-northeast2": (34.69, 135.50),  # Osaka
    "asia-northeast3": (37.57, 126.98),  # Seoul
    "asia-south1": (19.08, 72.88),  # Mumbai
    "asia-south2": (28.61, 77.21),  # Delhi
    "asia-southeast1": (1.34, 103.71),  # Jurong West, Singapore
    "asia-southeast2": (-6.21, 106.85),  # Jakarta
    "asia-southeast3": (13.75, 100.50),  # Bangkok
    "australia-southeast1": (-33.87, 151.21),  # Sydney
    "australia-southeast2": (-37.81, 144.96),  # Melbourne
    "me-central1": (25.29, 51.53),  # Doha
    "me-central2": (26.43, 50.10),  # Dammam
    "me-west1": (32.09, 34.78),  # Tel Aviv
    "africa-south1": (-26.20, 28.05),  # Johannesburg
}

AWS = {
    "us-east-1": (38.13, -78.45),  # Northern Virginia
    "us-east-2": (40.42, -82.91),  # Ohio
    "us-west-1": (37.35, -121.96),  # Northern California
    "us-west-2": (45.84, -119.70),  # Oregon
    "ca-central-1": (45.50, -73.57),  # Montréal
    "ca-west-1": (51.05, -114.07),  # Calgary
    "sa-east-1": (-23.55, -46.63),  # São Paulo
    "eu-west-1": (53.35, -6.26),  # Dublin
    "eu-west-2": (51.51, -0.13),  # London
    "eu-west-3": (48.86, 2.35),  # Paris
    "eu-central-1": (50.11, 8.68),  # Frankfurt
    "eu-central-2": (47.38, 8.54),  # Zurich
    "eu-north-1": (59.33, 18.07),  # Stockholm
    "eu-south-1": (45.46, 9.19),  # Milan
    "eu-south-2": (41.65, -0.88),  # Zaragoza (Aragón)
    "ap-south-1": (19.08, 72.88),  # Mumbai
    "ap-south-2": (17.39, 78.49),  # Hyderabad
    "ap-southeast-1": (1.35, 103.82),  # Singapore
    "ap-southeast-2": (-33.87, 151.21),  # Sydney
    "ap-southeast-3": (-6.21, 106.85),  # Jakarta
    "ap-southeast-4": (-37.81, 144.96),  # Melbourne
    "ap-northeast-1": (35.68, 139.69),  # Tokyo
    "ap-northeast-2": (37.57, 126.98),  # Seoul
    "ap-northeast-3": (34.69, 135.50),  # Osaka
    "ap-east-1": (22.32, 114.17),  # Hong Kong
    "me-south-1": (26.07, 50.56),  # Bahrain
    "me-central-1": (24.45, 54.38),  # UAE
    "il-central-1": (32.09, 34.78),  # Tel Aviv
    "af-south-1": (-33.92, 18.42),  # Cape Town
}

AZURE = {
    "eastus": (37.37, -79.82),  # Virginia
    "eastus2": (36.67, -78.39),  # Virginia
    "centralus": (41.59, -93.62),  # Iowa
    "northcentralus": (41.88, -87.63),  # Illinois
    "southcentralus": (29.42, -98.49),  # Texas
    "westus": (37.78, -122.42),  # California
    "westus2": (47.23, -119.85),  # Washington
    "westus3": (33.45, -112.07),  # Phoenix
    "canadacentral": (43.65, -79.38),  # Toronto
    "canadaeast": (46.81, -71.21),  # Québec City
    "brazilsouth": (-23.55, -46.63),  # São Paulo
    "westeurope": (52.37, 4.90),  # Netherlands
    "northeurope": (53.35, -6.26),  # Ireland
    "uksouth": (51.51, -0.13),  # London
    "ukwest": (51.48, -3.18),  # Cardiff
    "francecentral": (48.86, 2.35),  # Paris
    "germanywestcentral": (50.11, 8.68),  # Frankfurt
    "switzerlandnorth": (47.38, 8.54),  # Zurich
    "swedencentral": (60.67, 17.14),  # Gävle
    "norwayeast": (59.91, 10.75),  # Oslo
    "polandcentral": (52.23, 21.01),  # Warsaw
    "italynorth": (45.46, 9.19),  # Milan
    "spaincentral": (40.42, -3.70),  # Madrid
    "centralindia": (18.52, 73.86),  # Pune
    "southindia": (13.08, 80.27),  # Chennai
    "southeastasia": (1.35, 103.82),  # Singapore
    "eastasia": (22.32, 114.17),  # Hong Kong
    "japaneast": (35.68, 139.69),  # Tokyo
    "japanwest": (34.69, 135.50),  # Osaka
    "koreacentral": (37.57, 126.98),  # Seoul
    "australiaeast": (-33.87, 151.21),  # New South Wales
    "australiasoutheast": (-37.81, 144.96),  # Victoria
    "southafricanorth": (-26.20, 28.05),  # Johannesburg
    "uaenorth": (25.27, 55.30),  # Dubai
    "qatarcentral": (25.29, 51.53),  # Doha
    "israelcentral": (32.09, 34.78),  # Israel
}

CLOUDS = {"gcp": GCP, "aws": AWS, "azure": AZURE}
